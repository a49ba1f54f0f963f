"""Post-request hooks: Prometheus metrics and the logging integrations (Supabase, PostHog,
Mixpanel, Sentry, Helicone), each fed from one RequestEvent per request, off the request path.
"""
from __future__ import annotations

from app.callbacks.dispatcher import Dispatcher
from app.callbacks.metrics import MetricsConsumer, known_models
from app.callbacks.queue import DeliveryQueue
from app.callbacks.redaction import Scrubber, known_secrets, prepare
from app.callbacks.settings import CallbackSettings, load_callback_settings


def _sink(name: str, config: CallbackSettings, scrubber: Scrubber):
    """The integration's client; imported only when enabled (each pulls in its SDK)."""
    if name == "supabase":
        from app.callbacks.supabase import SupabaseSink
        return SupabaseSink(config)
    if name == "posthog":
        from app.callbacks.posthog import PostHogSink
        return PostHogSink(config)
    if name == "mixpanel":
        from app.callbacks.mixpanel import MixpanelSink
        return MixpanelSink(config)
    if name == "sentry":
        from app.callbacks.sentry import SentrySink
        return SentrySink(config, scrubber)
    from app.callbacks.helicone import HeliconeSink
    return HeliconeSink(config)


def build_callback_consumers(service) -> list:
    """The metrics consumer, plus a dispatcher when any integration is configured.

    Raises ConfigError (at start) for an unknown integration or a missing credential."""
    consumers: list = [MetricsConsumer(known_models(service))]
    config = load_callback_settings(service.settings)
    if not config.enabled:
        return consumers
    scrubber = Scrubber(known_secrets(service.settings))

    def prepared(event):
        return prepare(event, scrubber, config.redact_messages)

    # Sentry last: its init is process-wide, so the others' settings are checked before it.
    queues = {name: DeliveryQueue(_sink(name, config, scrubber), config.queue_size,
                                  config.max_retries, prepared, scrubber.text)
              for name in sorted(config.enabled, key=lambda name: name == "sentry")}
    consumers.append(Dispatcher(queues, config.success, config.failure))
    return consumers
