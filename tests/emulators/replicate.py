"""Replicate emulator: predictions that progress starting -> processing -> an end, and their
event streams.

Routes as on api.replicate.com: `POST /v1/predictions` (a version), `POST
/v1/models/<owner>/<name>/predictions` (an official model), `GET /v1/predictions/<id>`,
and the prediction's `urls.stream` at `GET /v1/streams/<id>` (another host on the real
service; here the same server).

What it checks, recording a violation (the test fixture fails the test on any):
- `Authorization: Bearer <key>` (otherwise 401 problem details, as the API answers);
- create bodies against the official contract, and `Prefer` against the spec's pattern;
- `input` against the model's own published input names and types. Replicate silently
  ignores inputs a model does not define, so an unknown input is a violation here: the
  client's parameter would be lost without a word;
- the prompt against the model family's chat format; it is parsed back into turns for the
  fake model, after the model's own `prompt_template` default is applied, as the real
  model does (so a prompt wrapped twice breaks the parse);
- stream requests carry `Accept: text/event-stream`.
Every prediction it returns is validated against the contract's response schema.

Knobs, reset before each test: `polls` (GETs that still answer running), `ending`
("succeeded", "failed", "canceled"), `error`, `metrics` (token counts on or off),
`string_output`, `stream_cut` (close the stream before `done`).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from openapi_schema_validator import OAS31Validator

from tests.emulators.contracts import Contract, Schema, allow_null, load_spec, transformed
from tests.emulators.model import Generation, Turn, count_words, generate, stream_pieces
from tests.emulators.replicate_prompts import PARSERS
from tests.emulators.server import Call, Emulator, Reply

CONTRACT = Contract("replicate/openapi.json")
VERSION_REQUEST = CONTRACT.request_body_pointer("/predictions")
MODEL_REQUEST = CONTRACT.request_body_pointer("/models/{model_owner}/{model_name}/predictions")
PREFER = re.compile(r"^wait(=([1-9]|[1-9][0-9]|60))?$")   # the spec's Prefer pattern
PROBLEM = "application/problem+json"

LLAMA2_VERSION = "2c1608e18606fad2812020dc541930f2d0495ce32eee50074220b87300bc16e1"
PLAIN_VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
NO_STREAM_VERSION = "9dcd6d78e7c6560c340d916fe32e9f24aabfa331e5cce95fe31f77fb03121426"
TUNED_VERSION = "8e6975e5ed6174911a6ff3d60540dfd4844201974602551e10e9e87ab143d81e"

# Input names and types as the models' published schemas list them.
LLAMA2_INPUTS = {"prompt": "string", "system_prompt": "string", "max_new_tokens": "integer",
                 "min_new_tokens": "integer", "temperature": "number", "top_p": "number",
                 "top_k": "integer", "stop_sequences": "string", "seed": "integer",
                 "debug": "boolean"}
LLAMA3_INPUTS = {"prompt": "string", "max_tokens": "integer", "min_tokens": "integer",
                 "temperature": "number", "top_p": "number", "top_k": "integer",
                 "presence_penalty": "number", "frequency_penalty": "number",
                 "prompt_template": "string"}
MIXTRAL_INPUTS = {**{k: v for k, v in LLAMA3_INPUTS.items() if "tokens" not in k},
                  "max_new_tokens": "integer", "min_new_tokens": "integer"}
TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


@dataclass(frozen=True)
class Model:
    family: str                       # llama2, llama3, mistral, plain
    inputs: dict | None               # input name -> JSON type; None: accepts anything
    official: bool = True
    prompt_template: str = "{prompt}"   # the model's own default wrapper
    streams: bool = True


MODELS = {
    "meta/llama-2-70b-chat": Model("llama2", LLAMA2_INPUTS),
    "meta/meta-llama-3-70b-instruct": Model("llama3", LLAMA3_INPUTS),
    "meta/meta-llama-3-8b-instruct": Model("llama3", LLAMA3_INPUTS),
    "mistralai/mixtral-8x7b-instruct-v0.1": Model("mistral", MIXTRAL_INPUTS,
                                                  prompt_template="<s>[INST] {prompt} [/INST] "),
    "acme/plain-llm": Model("plain", None, official=False),
    "acme/batch-llm": Model("plain", None, official=False, streams=False),
    "someone/llama-2-13b-chat-tuned": Model("llama2", None, official=False),
}
VERSIONS = {LLAMA2_VERSION: "meta/llama-2-70b-chat", PLAIN_VERSION: "acme/plain-llm",
            NO_STREAM_VERSION: "acme/batch-llm", TUNED_VERSION: "someone/llama-2-13b-chat-tuned"}


def problem(status: int, title: str, detail: str, headers: dict | None = None,
            **extra) -> Reply:
    """Replicate's error body: problem details."""
    return Reply(status, {"title": title, "detail": detail, "status": status, **extra},
                 headers or {}, content_type=PROBLEM)


def throttled(seconds: int = 1, header: bool = True) -> Reply:
    unit = "second" if seconds == 1 else "seconds"
    return problem(429, "Request was throttled",
                   f"Request was throttled. Expected available in {seconds} {unit}.",
                   {"Retry-After": str(seconds)} if header else {})


UNAUTHENTICATED = problem(401, "Unauthenticated", "You did not pass a valid authentication token")
NOT_FOUND = problem(404, "Not found", "The requested resource could not be found.")


# -- the response contract ------------------------------------------------------------------
def _version_any_of(node: dict) -> dict:
    """The `version` oneOf ("hidden" matches both branches, so the spec rejects its own
    official-model value) as anyOf."""
    if "oneOf" in node and any("hidden" in (b.get("enum") or ()) for b in node["oneOf"]):
        node["anyOf"] = node.pop("oneOf")
    return node


# The prediction response schema. The spec is OAS 3.1 but marks nulls with 3.0's `nullable`,
# which 3.1 validators ignore.
PREDICTION = Schema(lambda: OAS31Validator(transformed(allow_null(load_spec(
    "replicate/openapi.json")["components"]["schemas"]["schemas_prediction_response"]),
    _version_any_of)))


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict
    generation: Generation
    stream: bool
    polls_left: int
    ending: str
    error: str | None
    created_at: str
    gets: int = 0
    poll_times: list[float] = field(default_factory=list)


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"


def sse_event(name: str, data: str, event_id: str | None = None) -> bytes:
    """One named SSE event; a multi-line data value becomes several `data:` lines."""
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id else "")
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


class ReplicateEmulator(Emulator):
    name = "replicate"
    api_key = "r8_test0123456789replicateKEYabcdef"
    key_env, base_env = "REPLICATE_API_TOKEN", "REPLICATE_API_BASE"

    def reset_knobs(self) -> None:
        self.predictions: dict[str, Prediction] = {}
        self.configure()

    def configure(self, polls: int = 0, ending: str = "succeeded", error: str | None = None,
                  metrics: bool = True, string_output: bool = False,
                  stream_cut: bool = False) -> None:
        self.polls, self.ending, self.error = polls, ending, error
        self.metrics, self.string_output, self.stream_cut = metrics, string_output, stream_cut

    # -- routing ----------------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return UNAUTHENTICATED
        if call.method == "POST" and call.path == "/v1/predictions":
            return self.create(call, VERSION_REQUEST, None)
        found = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", call.path)
        if call.method == "POST" and found:
            return self.create(call, MODEL_REQUEST, f"{found[1]}/{found[2]}")
        found = re.fullmatch(r"/v1/(predictions|streams)/([a-z0-9]+)", call.path)
        prediction = found and self.predictions.get(found[2])
        if call.method == "GET" and prediction:
            return self.poll(prediction) if found[1] == "predictions" else self.events(
                call, prediction)
        return NOT_FOUND

    # -- create -----------------------------------------------------------------------------
    def create(self, call: Call, pointer: str, official: str | None) -> Reply:
        prefer = call.headers.get("prefer")
        problems = CONTRACT.errors(pointer, call.body)
        if prefer is not None and not PREFER.match(prefer):
            problems.append(f"Prefer {prefer!r} does not match {PREFER.pattern}")
        if problems:
            self.check_contract(problems, f"create {call.path}")
            return problem(422, "Input validation failed", "; ".join(problems))
        name, version = self._model_for(call.body, official)
        if name is None:
            return (NOT_FOUND if official else problem(
                422, "Invalid version or not permitted",
                "The specified version does not exist (or perhaps you don't have permission "
                "to use it?)"))
        model = MODELS[name]
        bad = self._input_problems(call.body["input"], model)
        if bad:
            self.check_contract(bad, f"input for {name}")
            return problem(422, "Input validation failed", "\n".join(f"- {b}" for b in bad),
                           invalid_fields=[{"type": "invalid", "field": "input",
                                            "description": b} for b in bad])
        try:
            generation = self._generate(call.body["input"], model)
        except ValueError as exc:
            self.check_contract([str(exc)], f"{model.family} prompt for {name}")
            return problem(422, "Input validation failed", str(exc))
        prediction = Prediction(f"emu{next(self._ids):04d}pred", name, version, call.body["input"],
                                generation, bool(call.body.get("stream")), self.polls,
                                self.ending, self.error, _timestamp())
        with self._lock:
            self.predictions[prediction.id] = prediction
        if prefer is None:
            return Reply(201, self.render(prediction, "starting"))
        # Prefer: wait holds the request until the end, or answers what is there after the wait.
        return Reply(201, self.render(prediction, "end" if self.polls == 0 else "processing"))

    def _model_for(self, body: dict, official: str | None) -> tuple[str | None, str]:
        if official is not None:
            model = MODELS.get(official)
            return (official if model and model.official else None), "hidden"
        name, _, version = body["version"].rpartition(":")
        if not version or "/" in version:     # "owner/name": an official model
            model = MODELS.get(body["version"])
            return (body["version"] if model and model.official else None), "hidden"
        known = VERSIONS.get(version)
        return (known if known and name in ("", known) else None), version

    @staticmethod
    def _input_problems(given: dict, model: Model) -> list[str]:
        if not isinstance(given.get("prompt"), str):
            return ["input.prompt: a string is required"]
        if model.inputs is None:
            return []
        problems = []
        for key, value in given.items():
            kind = model.inputs.get(key)
            if kind is None:
                problems.append(f"input.{key}: this model has no such input (Replicate "
                                f"would ignore it)")
            elif not isinstance(value, TYPES[kind]) or (kind != "boolean" and
                                                       isinstance(value, bool)):
                problems.append(f"input.{key}: Invalid type. Expected: {kind}")
        return problems

    def _generate(self, given: dict, model: Model) -> Generation:
        template = given.get("prompt_template", model.prompt_template)
        prompt = template.replace("{prompt}", given["prompt"])
        turns = PARSERS[model.family](prompt)
        if given.get("system_prompt"):
            if any(role == "system" for role, _ in turns):
                raise ValueError("system text given both in system_prompt and in the prompt")
            turns.insert(0, ("system", given["system_prompt"]))
        takes = model.inputs or {"max_new_tokens": 1, "max_tokens": 1, "stop_sequences": 1}
        limit = next((given[k] for k in ("max_new_tokens", "max_tokens") if k in takes
                      and k in given), None)
        stop = given.get("stop_sequences") if "stop_sequences" in takes else None
        generation = generate([Turn(role, text) for role, text in turns], max_tokens=limit,
                              stop=stop.split(",") if stop else None)
        generation.prompt_tokens = count_words(given["prompt"]) + count_words(
            given.get("system_prompt") or "")
        return generation

    # -- poll and stream ----------------------------------------------------------------------
    def poll(self, prediction: Prediction) -> Reply:
        with self._lock:
            prediction.gets += 1
            prediction.poll_times.append(time.monotonic())
            running = prediction.polls_left > 0
            prediction.polls_left -= running
        return Reply(200, self.render(prediction, "processing" if running else "end"))

    def render(self, p: Prediction, phase: str) -> dict:
        """The prediction object at a phase: starting, processing (partial output) or end."""
        pieces = stream_pieces(p.generation.text)
        status = p.ending if phase == "end" else phase
        output = (pieces if status == "succeeded" else
                  pieces[:len(pieces) // 2] if status == "processing" else None)
        base = self.base_url
        body = {
            "id": p.id, "model": p.model, "version": p.version, "input": p.input, "logs": "",
            "output": "".join(output) if self.string_output and output is not None else output,
            "data_removed": False, "error": p.error if status == "failed" else None,
            "status": status, "created_at": p.created_at, "source": "api",
            "urls": {"get": f"{base}/v1/predictions/{p.id}",
                     "cancel": f"{base}/v1/predictions/{p.id}/cancel",
                     "web": f"https://replicate.com/p/{p.id}"},
        }
        if MODELS[p.model].streams:
            body["urls"]["stream"] = f"{base}/v1/streams/{p.id}"
        if phase != "starting":
            body["started_at"] = p.created_at
        if phase == "end":
            body["completed_at"] = _timestamp()
            body["metrics"] = {"predict_time": 0.05, "total_time": 0.06}
            if self.metrics and status == "succeeded":
                body["metrics"].update(input_token_count=p.generation.prompt_tokens,
                                       output_token_count=p.generation.completion_tokens)
        self.check_answer(PREDICTION.errors(body), "prediction answer")
        return body

    def events(self, call: Call, p: Prediction) -> Reply:
        if call.headers.get("accept") != "text/event-stream":
            self.check_contract([f"Accept {call.headers.get('accept')!r}"], "stream request")
        if not p.stream:
            self.check_contract(["the prediction was not created with stream"], "stream")
        return Reply(200, events=self._event_frames(p), content_type="text/event-stream")

    def _event_frames(self, p: Prediction):
        pieces = stream_pieces(p.generation.text)
        shown = pieces if p.ending == "succeeded" and not self.stream_cut else pieces[:2]
        yield sse_event("logs", "Using seed: 42")
        for n, piece in enumerate(shown):
            yield sse_event("output", piece, f"{int(time.time())}:{n}")
        if self.stream_cut:
            return
        if p.ending == "failed":
            yield sse_event("error", json.dumps({"detail": p.error or "failed"}))
            yield sse_event("done", json.dumps({"reason": "error"}))
        elif p.ending == "canceled":
            yield sse_event("done", json.dumps({"reason": "canceled"}))
        else:
            yield sse_event("done", "{}")
