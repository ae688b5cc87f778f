"""Management API for API keys: /api/keys/ (list, create) and /api/keys/<id>/ (show, revoke).
The tenant's settings (/api/settings/) are composed with other apps' in apps.dashboard.api."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from . import selectors, services
from .serializers import ApiKeyCreateSerializer, ApiKeySerializer


def _creator(request):
    return request.user if getattr(request.user, "pk", None) else None


@extend_schema(methods=["GET"], responses=ApiKeySerializer(many=True))
@extend_schema(methods=["POST"], request=ApiKeyCreateSerializer, responses={201: ApiKeySerializer})
@api_view(["GET", "POST"])
def keys_collection(request):
    if request.method == "GET":
        keys = selectors.api_key_list(tenant=request.tenant)
        return Response({"data": ApiKeySerializer(keys, many=True).data})
    form = ApiKeyCreateSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    key, raw = services.api_key_issue(tenant=request.tenant, name=form.validated_data["name"],
                                      scope=form.validated_data["scope"], created_by=_creator(request))
    # The only response that ever carries the secret.
    return Response({**ApiKeySerializer(key).data, "key": raw}, status=status.HTTP_201_CREATED)


@extend_schema(responses=ApiKeySerializer)
@api_view(["GET", "DELETE"])
def key_detail(request, key_id):
    if request.method == "GET":
        return Response(ApiKeySerializer(selectors.access_api_key(tenant=request.tenant, key_id=key_id)).data)
    key = services.api_key_revoke(tenant=request.tenant, key_id=key_id)
    return Response(ApiKeySerializer(key).data)
