from django.core.management.base import BaseCommand

from apps.cache.embedder import export_onnx, export_path


class Command(BaseCommand):
    help = "Export the shipped MiniLM weights to ONNX in AKA_MODEL_DIR, once (bootstrap and the image build)."

    def handle(self, *args, **opts):
        target = export_path()
        if target.exists():
            self.stdout.write(f"{target} already exported")
            return
        export_onnx(target)
        self.stdout.write(f"exported {target}")
