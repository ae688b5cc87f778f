from django.urls import path

from . import views

urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/messages", views.messages, name="messages"),
    path("v1/messages/count_tokens", views.count_tokens, name="count-tokens"),
    path("v1/models", views.models, name="models"),
    path("v1/models/<str:model>", views.model, name="model"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/feedback", views.feedback, name="feedback"),
]
