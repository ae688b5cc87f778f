"""A stateful stand-in for Stripe's servers, behind the SDK's own seam.

`FakeStripe` is a `stripe.HTTPClient`: `StripeClient(key, http_client=FakeStripe())` sends
every request here instead of over the network, so everything above it (our code, the
SDK's encoding, its error mapping) is the real thing. Its state lives in Redis, so the
gateway, Celery workers and tests see one Stripe. It holds meters, products, metered
prices, customers, subscriptions and meter events (a repeated `identifier` is refused),
computes invoice previews and event summaries from its events, signs webhooks with the
endpoint's secret, and fails on demand (500, 429, timeout, or accept-then-hang).

Conformance: each request body is decoded and validated against the SDK's own TypedDict
for that call (pydantic, `extra='forbid'`), so a misspelt or removed parameter fails;
each response carries only attributes the SDK's resource class declares.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
import time
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ForwardRef, NotRequired, Required, Union
from urllib.parse import parse_qsl, urlsplit

import orjson
import stripe
from pydantic import ConfigDict, TypeAdapter, ValidationError
from stripe import params as P
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject
from typing_extensions import TypedDict, is_typeddict

PREFIX = "fakestripe:"
ALL_PATHS = "/"


# --- Requests checked against the SDK's typed parameters -------------------------------

_mirrors: dict[Any, Any] = {}


def _resolve(x: Any, ns: dict[str, Any]) -> Any:
    if isinstance(x, str):
        x = eval(x, ns)  # the SDK's own string annotations, in its own module
    if isinstance(x, ForwardRef):
        x = eval(x.__forward_arg__, ns)
    return x


def _mirror(t: Any, ns: dict[str, Any]) -> Any:
    """The SDK's parameter type as pydantic can check it strictly: TypedDicts forbid extra
    keys; the request options (api key, idempotency key: headers, never the body) are left
    out; the SDK's untyped object maps become plain dicts."""
    t = _resolve(t, ns)
    if is_typeddict(t):
        if t not in _mirrors:
            own_ns = vars(sys.modules[t.__module__])
            fields = {}
            for name, annotation in t.__annotations__.items():
                if name in RequestOptions.__annotations__:
                    continue
                hint = _resolve(annotation, own_ns)
                if typing.get_origin(hint) in (NotRequired, Required):
                    hint = typing.get_args(hint)[0]
                hint = _mirror(hint, own_ns)
                fields[name] = hint if name in t.__required_keys__ else NotRequired[hint]
            mirrored = TypedDict(t.__name__, fields)  # type: ignore[misc]  # a TypedDict made at run time
            mirrored.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
            _mirrors[t] = mirrored
        return _mirrors[t]
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is UntypedStripeObject:
        return dict[str, _mirror(args[0], ns)]  # type: ignore[misc]
    if origin is None or not args or origin is typing.Literal:
        return t
    mapped = tuple(_mirror(a, ns) for a in args)
    if origin in (Union, types.UnionType):
        return Union[mapped]  # noqa: UP007
    return t.copy_with(mapped) if hasattr(t, "copy_with") else origin[mapped]


_adapters: dict[Any, TypeAdapter[Any]] = {}


def validate(params_type: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters as the SDK's TypedDict types them; ValidationError otherwise."""
    if params_type not in _adapters:
        _adapters[params_type] = TypeAdapter(_mirror(params_type, {}))
    return typing.cast(dict[str, Any], _adapters[params_type].validate_python(params))


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (`items[0][price]=p&payload[value]=3`) back into nested data."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node: Any) -> Any:
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node

    return typing.cast(dict[str, Any], lists(out))


def conform(obj: dict[str, Any], resource: type) -> dict[str, Any]:
    """Checks a response carries only what the SDK's resource class declares, and names
    the class's object type."""
    declared: set[str] = {"object"}
    for klass in resource.__mro__:
        declared |= set(klass.__dict__.get("__annotations__", {}))
    expected = getattr(resource, "OBJECT_NAME", obj.get("object"))
    if obj.get("object") != expected:
        raise AssertionError(f"{resource.__name__} is a {expected!r}, not {obj.get('object')!r}")
    unknown = set(obj) - declared
    if unknown:
        raise AssertionError(f"{resource.__name__} has no attribute(s) {sorted(unknown)}")
    return obj


# --- Failures on demand ------------------------------------------------------------------

class Fault:
    SERVER_ERROR = "500"
    RATE_LIMITED = "429"
    TIMEOUT = "timeout"
    KEY_REFUSED = "401"
    HANG_AFTER = "hang_after"   # do the work, then never answer (a worker killed meanwhile)


class FakeStripe(stripe.HTTPClient):
    name = "akarouter-fake"

    def __init__(self, redis: Any, *, webhook_secret: str = "", hang_seconds: float = 600.0) -> None:
        super().__init__()
        self.r, self.webhook_secret, self.hang_seconds = redis, webhook_secret, hang_seconds
        self.routes: list[tuple[str, re.Pattern[str], Any, Callable[..., tuple[int, dict[str, Any]]]]] = [
            ("POST", re.compile(r"/v1/billing/meters"), P.billing.MeterCreateParams, self._meter_create),
            ("GET", re.compile(r"/v1/billing/meters"), P.billing.MeterListParams, self._meter_list),
            ("GET", re.compile(r"/v1/billing/meters/(?P<id>[^/]+)/event_summaries"),
             P.billing.MeterEventSummaryListParams, self._event_summaries),
            ("POST", re.compile(r"/v1/billing/meter_events"), P.billing.MeterEventCreateParams, self._meter_event),
            ("POST", re.compile(r"/v1/products"), P.ProductCreateParams, self._product_create),
            ("GET", re.compile(r"/v1/products/(?P<id>[^/]+)"), P.ProductRetrieveParams, self._product_get),
            ("POST", re.compile(r"/v1/prices"), P.PriceCreateParams, self._price_create),
            ("GET", re.compile(r"/v1/prices"), P.PriceListParams, self._price_list),
            ("POST", re.compile(r"/v1/customers"), P.CustomerCreateParams, self._customer_create),
            ("POST", re.compile(r"/v1/customers/(?P<id>[^/]+)"), P.CustomerUpdateParams, self._customer_update),
            ("GET", re.compile(r"/v1/setup_intents/(?P<id>[^/]+)"), P.SetupIntentRetrieveParams, self._setup_intent),
            ("POST", re.compile(r"/v1/subscriptions"), P.SubscriptionCreateParams, self._subscription_create),
            ("GET", re.compile(r"/v1/subscriptions"), P.SubscriptionListParams, self._subscription_list),
            ("POST", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), P.SubscriptionUpdateParams,
             self._subscription_update),
            ("POST", re.compile(r"/v1/invoices/create_preview"), P.InvoiceCreatePreviewParams, self._preview),
            ("POST", re.compile(r"/v1/checkout/sessions"), P.checkout.SessionCreateParams, self._checkout),
            ("POST", re.compile(r"/v1/billing_portal/sessions"), P.billing_portal.SessionCreateParams, self._portal),
        ]

    # The SDK's seam

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
                *, _usage: list[str] | None = None) -> tuple[str, int, Mapping[str, str]]:
        method, parts = method.upper(), urlsplit(url)
        fault = self._fault(parts.path)
        if fault == Fault.TIMEOUT:
            # The SDK leaves this constructor unannotated.
            raise stripe.APIConnectionError("Request to Stripe timed out (fake)", should_retry=True)  # type: ignore[no-untyped-call]
        if fault == Fault.SERVER_ERROR:
            return self._error(500, "api_error", "An unknown error occurred (fake)")
        if fault == Fault.RATE_LIMITED:
            return self._error(429, "invalid_request_error", "Too many requests (fake)", code="rate_limit")
        if fault == Fault.KEY_REFUSED:
            return self._error(401, "invalid_request_error", "Invalid API Key provided (fake)")
        idem = (headers or {}).get("Idempotency-Key") if method == "POST" else None
        if idem and (done := self.r.hget(PREFIX + "idempotency", idem)):
            return done.decode(), 200, {"request-id": "req_fake"}
        answer = self._dispatch(method, parts.path, post_data if method == "POST" else parts.query)
        if idem and answer[1] == 200:
            self.r.hset(PREFIX + "idempotency", idem, answer[0])
        if fault == Fault.HANG_AFTER:
            time.sleep(self.hang_seconds)
        return answer

    def request_stream(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
                       *, _usage: list[str] | None = None) -> tuple[Any, int, Mapping[str, str]]:
        raise NotImplementedError("the fake serves no streaming endpoints")

    def close(self) -> None:
        pass

    def _dispatch(self, method: str, path: str, body: str | None) -> tuple[str, int, Mapping[str, str]]:
        for verb, pattern, params_type, handler in self.routes:
            found = pattern.fullmatch(path)
            if verb == method and found:
                try:
                    params = validate(params_type, decode_form(body or ""))
                except ValidationError as exc:
                    return self._error(400, "invalid_request_error", f"Invalid parameters (fake): {exc}")
                status, obj = handler(params, **found.groupdict())
                if status != 200:
                    return self._error(status, "invalid_request_error", obj["message"], code=obj.get("code"))
                return orjson.dumps(obj).decode(), 200, {"request-id": "req_" + secrets.token_hex(6)}
        return self._error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}) (fake)")

    @staticmethod
    def _error(status: int, kind: str, message: str, code: str | None = None) -> tuple[str, int, Mapping[str, str]]:
        body = {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}
        return orjson.dumps(body).decode(), status, {"request-id": "req_fake"}

    # Faults

    def fail(self, mode: str, *, times: int = 0, seconds: float = 0.0, path: str = ALL_PATHS) -> None:
        """The next `times` requests under `path` fail with `mode`, or all of them for `seconds`."""
        if times:
            self.r.rpush(PREFIX + "faults:" + path, *[mode] * times)
        if seconds:
            self.r.set(PREFIX + "fault_until:" + path, f"{mode} {time.time() + seconds}")

    def recover(self) -> None:
        for key in self.r.scan_iter(PREFIX + "fault*"):
            self.r.delete(key)

    def _fault(self, path: str) -> str | None:
        for scope in (path, ALL_PATHS):
            mode = self.r.lpop(PREFIX + "faults:" + scope)
            if mode:
                return typing.cast(str, mode.decode())
            timed = self.r.get(PREFIX + "fault_until:" + scope)
            if timed:
                mode, until = timed.decode().split()
                if time.time() < float(until):
                    return typing.cast(str, mode)
        return None

    # State

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{secrets.token_hex(8)}"

    def _put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.r.hset(PREFIX + kind, obj["id"], orjson.dumps(obj))
        return obj

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        found = self.r.hget(PREFIX + kind, obj_id)
        return typing.cast(dict[str, Any], orjson.loads(found)) if found else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.r.hvals(PREFIX + kind)]

    def meter_events(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.r.lrange(PREFIX + "meter_events", 0, -1)]

    def usage(self, customer: str, start: int = 0, end: int = 2**62) -> int:
        """The sum of the customer's meter event values with timestamps in [start, end)."""
        return sum(int(e["payload"]["value"]) for e in self.meter_events()
                   if e["payload"].get("stripe_customer_id") == customer and start <= e["timestamp"] < end)

    def reset(self) -> None:
        for key in self.r.scan_iter(PREFIX + "*"):
            self.r.delete(key)

    @staticmethod
    def _list(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
        return conform({"object": "list", "url": url, "has_more": False, "data": data}, stripe.ListObject)

    # Handlers: (status, object or error)

    def _meter_create(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        meter = {
            "id": self._new_id("mtr"), "object": "billing.meter", "created": now, "updated": now, "livemode": False,
            "display_name": p["display_name"], "event_name": p["event_name"], "status": "active",
            "customer_mapping": p.get("customer_mapping", {"type": "by_id", "event_payload_key": "stripe_customer_id"}),
            "default_aggregation": p["default_aggregation"], "event_time_window": p.get("event_time_window"),
            "value_settings": p.get("value_settings", {"event_payload_key": "value"}),
            "status_transitions": {"deactivated_at": None},
        }
        return 200, self._put("meters", conform(meter, stripe.billing.Meter))

    def _meter_list(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meters = [m for m in self.all("meters") if "status" not in p or m["status"] == p["status"]]
        return 200, self._list("/v1/billing/meters", meters)

    def _event_summaries(self, p: dict[str, Any], id: str) -> tuple[int, dict[str, Any]]:
        start, end = p["start_time"], p["end_time"]
        summary = {"id": self._new_id("mtrusg"), "object": "billing.meter_event_summary", "livemode": False,
                   "meter": id, "start_time": start, "end_time": end,
                   "aggregated_value": float(self.usage(p["customer"], start, end))}
        return 200, self._list(f"/v1/billing/meters/{id}/event_summaries",
                               [conform(summary, stripe.billing.MeterEventSummary)])

    def _meter_event(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        timestamp = p.get("timestamp", now)
        if not now - 35 * 86400 <= timestamp <= now + 300:
            return 400, {"message": "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future."}
        if not any(m["event_name"] == p["event_name"] for m in self.all("meters")):
            return 400, {"message": f"No active meter was found for event_name '{p['event_name']}'."}
        if self.get("customers", p["payload"].get("stripe_customer_id", "")) is None:
            return 400, {"message": "No such customer.", "code": "resource_missing"}
        identifier = p.get("identifier") or self._new_id("mevt")
        if not self.r.sadd(PREFIX + "identifiers", identifier):
            return 400, {"message": f"An event with identifier '{identifier}' already exists.",
                         "code": "resource_already_exists"}
        event = {"object": "billing.meter_event", "created": now, "event_name": p["event_name"],
                 "identifier": identifier, "livemode": False, "payload": p["payload"], "timestamp": timestamp}
        self.r.rpush(PREFIX + "meter_events", orjson.dumps(conform(event, stripe.billing.MeterEvent)))
        return 200, event

    def _product_create(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        product_id = p.get("id") or self._new_id("prod")
        if self.get("products", product_id):
            return 400, {"message": f"Product already exists with ID {product_id}", "code": "resource_already_exists"}
        now = int(time.time())
        product = {"id": product_id, "object": "product", "active": True, "created": now, "updated": now,
                   "livemode": False, "name": p["name"], "metadata": p.get("metadata", {}), "type": "service"}
        return 200, self._put("products", conform(product, stripe.Product))

    def _product_get(self, p: dict[str, Any], id: str) -> tuple[int, dict[str, Any]]:
        found = self.get("products", id)
        return (200, found) if found else (404, {"message": f"No such product: '{id}'", "code": "resource_missing"})

    def _price_create(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        recurring = p.get("recurring") or {}
        if recurring.get("usage_type") == "metered" and not recurring.get("meter"):
            return 400, {"message": "A metered price needs a meter."}
        if self.get("products", p.get("product", "")) is None:
            return 400, {"message": "No such product.", "code": "resource_missing"}
        lookup_key = p.get("lookup_key")
        for price in self.all("prices"):
            if lookup_key and price["lookup_key"] == lookup_key:
                if not p.get("transfer_lookup_key"):
                    return 400, {"message": f"A price with lookup_key '{lookup_key}' already exists."}
                price["lookup_key"] = None
                self._put("prices", price)
        price = {"id": self._new_id("price"), "object": "price", "active": True, "billing_scheme": "per_unit",
                 "created": int(time.time()), "currency": p["currency"], "livemode": False, "lookup_key": lookup_key,
                 "metadata": p.get("metadata", {}), "nickname": p.get("nickname"), "product": p["product"],
                 "recurring": {"interval": recurring.get("interval"), "interval_count": 1,
                               "usage_type": recurring.get("usage_type", "licensed"), "meter": recurring.get("meter")},
                 "type": "recurring" if recurring else "one_time", "unit_amount": p.get("unit_amount")}
        return 200, self._put("prices", conform(price, stripe.Price))

    def _price_list(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        keys = set(p.get("lookup_keys") or [])
        prices = [x for x in self.all("prices") if not keys or x["lookup_key"] in keys]
        return 200, self._list("/v1/prices", prices)

    def _customer_create(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        customer = {"id": self._new_id("cus"), "object": "customer", "created": int(time.time()), "livemode": False,
                    "email": p.get("email"), "name": p.get("name"), "metadata": p.get("metadata", {}),
                    "delinquent": False, "balance": 0}
        return 200, self._put("customers", conform(customer, stripe.Customer))

    def _customer_update(self, p: dict[str, Any], id: str) -> tuple[int, dict[str, Any]]:
        customer = self.get("customers", id)
        if customer is None:
            return 404, {"message": f"No such customer: '{id}'", "code": "resource_missing"}
        if "invoice_settings" in p:
            customer["invoice_settings"] = {**customer.get("invoice_settings", {}), **p["invoice_settings"]}
        customer["metadata"].update(p.get("metadata", {}))
        return 200, self._put("customers", customer)

    def _setup_intent(self, p: dict[str, Any], id: str) -> tuple[int, dict[str, Any]]:
        found = self.get("setup_intents", id)
        return (200, found) if found else (404, {"message": f"No such setupintent: '{id}'", "code": "resource_missing"})

    def checkout_completed(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session as Stripe reports it once the customer saved a card on the page."""
        intent = {"id": self._new_id("seti"), "object": "setup_intent", "customer": session["customer"],
                  "created": int(time.time()), "livemode": False, "status": "succeeded", "usage": "off_session",
                  "payment_method": self._new_id("pm"), "payment_method_types": ["card"]}
        self._put("setup_intents", conform(intent, stripe.SetupIntent))
        return {**session, "status": "complete", "setup_intent": intent["id"]}

    def _items(self, subscription_id: str, items: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_id = {item["id"]: item for item in old}
        now = int(time.time())
        for change in items:
            price = self.get("prices", change.get("price", ""))
            if change.get("id") in by_id and price:
                by_id[change["id"]]["price"] = price
            elif price:
                item = {"id": self._new_id("si"), "object": "subscription_item", "created": now, "metadata": {},
                        "price": price, "subscription": subscription_id, "current_period_start": now,
                        "current_period_end": now + 30 * 86400}
                by_id[item["id"]] = conform(item, stripe.SubscriptionItem)
        return list(by_id.values())

    def _subscription_create(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.get("customers", p.get("customer", "")) is None:
            return 400, {"message": "No such customer.", "code": "resource_missing"}
        if any(self.get("prices", i.get("price", "")) is None for i in p.get("items", [])):
            return 400, {"message": "No such price.", "code": "resource_missing"}
        sub_id, now = self._new_id("sub"), int(time.time())
        items = self._items(sub_id, p.get("items", []), [])
        subscription = {"id": sub_id, "object": "subscription", "customer": p["customer"], "status": "active",
                        "created": now, "start_date": now, "livemode": False, "metadata": p.get("metadata", {}),
                        "collection_method": "charge_automatically", "cancel_at_period_end": False,
                        "items": self._list(f"/v1/subscription_items?subscription={sub_id}", items)}
        return 200, self._put("subscriptions", conform(subscription, stripe.Subscription))

    def _subscription_list(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        def listed(subscription: dict[str, Any]) -> bool:
            if "status" not in p:  # Stripe's default: every subscription not canceled
                return bool(subscription["status"] != "canceled")
            return p["status"] in ("all", subscription["status"])

        found = [x for x in self.all("subscriptions") if p.get("customer") in (None, x["customer"]) and listed(x)]
        return 200, self._list("/v1/subscriptions", found[:p.get("limit", 10)])

    def _subscription_update(self, p: dict[str, Any], id: str) -> tuple[int, dict[str, Any]]:
        subscription = self.get("subscriptions", id)
        if subscription is None:
            return 404, {"message": f"No such subscription: '{id}'", "code": "resource_missing"}
        items = self._items(id, p.get("items", []), subscription["items"]["data"])
        subscription["items"]["data"] = items
        subscription["metadata"].update(p.get("metadata", {}))
        return 200, self._put("subscriptions", subscription)

    def invoice_for(self, customer: str, *, status: str = "draft") -> dict[str, Any]:
        """The customer's invoice for its usage so far (each metered item: usage x unit amount)."""
        subscriptions = [s for s in self.all("subscriptions") if s["customer"] == customer]
        used = self.usage(customer)
        total = sum(used * (i["price"]["unit_amount"] or 0) for s in subscriptions for i in s["items"]["data"])
        now, invoice_id = int(time.time()), self._new_id("in")
        invoice = {"id": invoice_id, "object": "invoice", "customer": customer, "status": status, "currency": "usd",
                   "created": now, "livemode": False, "subtotal": total, "total": total, "amount_due": total,
                   "amount_paid": 0, "amount_remaining": total, "period_start": now - 30 * 86400, "period_end": now,
                   "hosted_invoice_url": f"https://invoice.fake.invalid/{invoice_id}", "number": None}
        return conform(invoice, stripe.Invoice)

    def _preview(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.get("customers", p.get("customer", "")) is None:
            return 400, {"message": "No such customer.", "code": "resource_missing"}
        return 200, self.invoice_for(p["customer"])

    def _checkout(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.get("customers", p.get("customer", "")) is None:
            return 400, {"message": "No such customer.", "code": "resource_missing"}
        session_id = self._new_id("cs")
        session = {"id": session_id, "object": "checkout.session", "mode": p.get("mode"), "customer": p.get("customer"),
                   "setup_intent": None,
                   "created": int(time.time()), "livemode": False, "status": "open", "success_url": p.get("success_url"),
                   "cancel_url": p.get("cancel_url"), "url": f"https://checkout.fake.invalid/{session_id}"}
        return 200, self._put("checkout_sessions", conform(session, stripe.checkout.Session))

    def _portal(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.get("customers", p["customer"]) is None:
            return 400, {"message": "No such customer.", "code": "resource_missing"}
        session_id = self._new_id("bps")
        session = {"id": session_id, "object": "billing_portal.session", "customer": p["customer"],
                   "created": int(time.time()), "livemode": False, "return_url": p.get("return_url"),
                   "url": f"https://billing.fake.invalid/p/{session_id}"}
        return 200, conform(session, stripe.billing_portal.Session)

    # Webhooks

    def event(self, kind: str, obj: dict[str, Any], *, event_id: str | None = None,
              created: int | None = None) -> dict[str, Any]:
        """An event made at `created` (now if None): Stripe may deliver it much later."""
        return conform({"id": event_id or self._new_id("evt"), "object": "event", "type": kind,
                        "api_version": stripe.api_version, "created": created or int(time.time()), "livemode": False,
                        "pending_webhooks": 1, "data": {"object": obj}}, stripe.Event)

    def sign(self, payload: bytes, *, secret: str | None = None, at: int | None = None) -> str:
        """The `Stripe-Signature` header Stripe would send: HMAC-SHA256 of `<t>.<payload>`."""
        t = at or int(time.time())
        digest = hmac.new((secret or self.webhook_secret).encode(), f"{t}.".encode() + payload, hashlib.sha256)
        return f"t={t},v1={digest.hexdigest()}"

    def webhook(self, kind: str, obj: dict[str, Any], **kw: Any) -> tuple[bytes, str]:
        """(body, signature header) of an event, ready to POST to our endpoint."""
        payload = orjson.dumps(self.event(kind, obj, **kw))
        return payload, self.sign(payload)
