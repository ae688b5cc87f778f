from django.db import models


class CatalogModel(models.Model):
    """A model the gateway can call, with its list prices. Seeded from data/catalog.json,
    editable in the admin; credentials and base URLs live in settings, never here."""

    class Provider(models.TextChoices):
        OPENAI = "openai"
        ANTHROPIC = "anthropic"
        GEMINI = "gemini"
        LOCAL = "local", "OpenAI-compatible server (vLLM, Ollama...)"

    model_id = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    # The provider's own name for the model, when it differs from ours.
    upstream_id = models.CharField(max_length=100, blank=True)
    family = models.CharField(max_length=50)
    tier = models.CharField(max_length=20)
    input_per_mtok = models.DecimalField("input USD per 1M tokens", max_digits=10, decimal_places=4)
    output_per_mtok = models.DecimalField("output USD per 1M tokens", max_digits=10, decimal_places=4)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    capabilities = models.JSONField(default=list)
    fallbacks = models.JSONField(default=list, help_text="model ids tried in order when this one fails")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["provider", "model_id"]

    def __str__(self) -> str:
        return self.model_id
