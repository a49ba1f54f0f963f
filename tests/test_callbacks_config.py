"""The callbacks config is checked at start: a wrong name or a missing variable stops the
proxy with a message that names it (and never a credential's value)."""
from __future__ import annotations

import pytest

from app.config import ConfigError
from tests.capture import make_proxy


def start(provider_env, write_config, callbacks: str, **env):
    return make_proxy({**provider_env, **env}, write_config(f"callbacks: {callbacks}\n"))


@pytest.mark.parametrize("callbacks, env, message", [
    ("{success: [supabase, datadog]}", {},
     "callbacks.success.1: unknown integration 'datadog'; known: supabase, posthog, mixpanel, "
     "sentry, helicone"),
    ("{failure: [posthog]}", {}, "posthog is enabled but POSTHOG_API_KEY is not set"),
    ("{success: [supabase]}", {"SUPABASE_KEY": "k" * 20},
     "supabase is enabled but SUPABASE_URL is not set"),
    ("{success: [mixpanel]}", {}, "MIXPANEL_TOKEN is not set"),
    ("{success: [helicone]}", {}, "HELICONE_API_KEY is not set"),
    ("{failure: [sentry]}", {}, "SENTRY_DSN is not set"),
    ("{success: [sentry]}", {"SENTRY_DSN": "http://k@127.0.0.1:9/1"},
     "sentry records failures only: list it under callbacks.failure"),
    ("{success: [supabase]}", {"SUPABASE_URL": "db.example.co", "SUPABASE_KEY": "k" * 20},
     "SUPABASE_URL must be an http:// or https:// address"),
    ("{success: [supabase]}", {"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "k" * 20,
                               "SUPABASE_TABLE": "logs; drop table users"},
     "SUPABASE_TABLE must be a plain table name"),
    ("{success: [helicone]}", {"HELICONE_API_KEY": "k" * 20, "HELICONE_API_BASE": "ftp://x"},
     "HELICONE_API_BASE must be an http:// or https:// address"),
    ("{success: [posthog], timeout: 0}", {}, "callbacks.timeout"),
    ("{success: [posthog], queue_size: -1}", {}, "callbacks.queue_size"),
    ("{success: posthog}", {}, "callbacks.success: Not a valid list"),
    ("{sucess: [posthog]}", {}, "callbacks.sucess: Unknown field"),
])
def test_bad_callbacks_config_stops_the_start(provider_env, write_config, callbacks, env,
                                              message):
    with pytest.raises(ConfigError) as info:
        start(provider_env, write_config, callbacks, **env)
    assert message in str(info.value)


def test_a_bad_dsn_is_named_without_its_value(provider_env, write_config):
    with pytest.raises(ConfigError) as info:
        start(provider_env, write_config, "{failure: [sentry]}",
              SENTRY_DSN="ftp://secretpart1234567@sentry.example/1")
    assert "SENTRY_DSN is not a valid Sentry DSN" in str(info.value)
    assert "secretpart1234567" not in str(info.value)


def test_no_callbacks_no_threads(provider_env, write_config):
    proxy = make_proxy(provider_env, write_config("num_retries: 0\n"))
    assert [type(c).__name__ for c in proxy.service.consumers][-1] == "MetricsConsumer"
    assert proxy.chat("plain").status_code == 200
    proxy.close()


def test_gunicorn_refuses_to_start_without_an_integration_key(start_gunicorn, write_config):
    path = write_config("callbacks: {success: [helicone]}\n")
    with pytest.raises(RuntimeError) as info:
        start_gunicorn({"SWITCHBOARD_CONFIG": path})
    assert "helicone is enabled but HELICONE_API_KEY is not set" in str(info.value)
