"""Chat messages from the OpenAI and Anthropic Python SDKs, written in the GenAI message format.

The GenAI semantic conventions record a conversation as JSON: a list of ``{"role", "parts"}``
messages whose parts are typed (``text``, ``tool_call``, ``tool_call_response``, ``reasoning``,
``uri``, ``blob``, ``file``, or any other type kept as given). Users hold their messages in the
shape of the SDK they call, as dicts or as the SDK's pydantic objects, so each message and each
content block is recognised by its keys and types; no flag says which SDK it came from.

    >>> input_messages([{"role": "user", "content": "Hi"}], "s.prompt(text=...)")
    '[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]'
    >>> output_messages({"role": "assistant", "content": "Hello!"}, "stop", "s.response(text=...)")
    ('[{"role":"assistant","parts":[{"type":"text","content":"Hello!"}],"finish_reason":"stop"}]', 'stop')

Errors are raised at the call and name it: a value of the wrong type raises TypeError, a message
or block that lacks what it needs (a role, content, a part type) raises ValueError naming its index.
Every str written passes through ``_checks.text``, so no lone surrogate reaches the exporter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

from . import _checks as checks
from . import _semconv as sc

Part = dict[str, object]
Message = dict[str, object]

# OpenAI's developer role is the newer name of system; its legacy function role answers a call.
_ROLES: Final[Mapping[str, str]] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}

_NO_DUMP: Final = object()


def input_messages(value: object, where: str) -> str:
    """The GenAI input messages JSON for a prompt.

    A str is one user message with one text part. A list (or tuple) holds chat messages in the
    OpenAI or the Anthropic shape, each a dict or an SDK object with ``model_dump()``.
    """
    if isinstance(value, str):
        return sc.text_messages("user", checks.text(value, where))
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"[TCC] {where} expects a str or a list of chat messages (OpenAI or Anthropic shape), "
            f"got {checks.type_name(value)}{_list_hint(value)}"
        )
    convert = _Convert(where)
    try:
        return sc.dumps(convert.messages(value))
    except RecursionError:
        raise _too_deep(where) from None


def output_messages(value: object, finish_reason: str | None, where: str) -> tuple[str, str | None]:
    """The GenAI output messages JSON for a response, and the finish reason it has.

    ``value`` is a str (one assistant message with one text part), an assistant message (OpenAI
    ``ChatCompletionMessage`` or Anthropic-style ``{"role": "assistant", "content": [...]}``), an
    OpenAI choice (``message`` and ``finish_reason``), an OpenAI ``ChatCompletion`` (one output
    message per choice) or an Anthropic ``Message`` (``content`` blocks and ``stop_reason``), each as
    a dict or an SDK object. The finish reason is ``finish_reason`` when given, else the one found in
    the value (of the first choice that has one), else None; a message carries one only when known.
    """
    explicit = checks.optional_text(finish_reason, f"{where} finish_reason")
    if isinstance(value, str):
        return sc.text_messages("assistant", checks.text(value, where), explicit), explicit
    message = _as_mapping(value)
    if message is None:
        raise TypeError(
            f"[TCC] {where} expects a str or an assistant message (OpenAI or Anthropic shape, a dict "
            f"or an SDK object), got {checks.type_name(value)}"
        )
    convert = _Convert(where)
    try:
        messages, found = convert.outputs(message, explicit)
        return sc.dumps(messages), explicit if explicit is not None else found
    except RecursionError:
        raise _too_deep(where) from None


def tool_definitions(value: object, where: str) -> str:
    """The ``gen_ai.tool.definitions`` JSON: a str as is (it is JSON already), or a list of tool
    definitions (OpenAI ``{"type": "function", "function": {...}}``, Anthropic ``{"name",
    "description", "input_schema"}``, dicts or SDK objects) kept as given, as the convention asks."""
    if isinstance(value, str):
        return checks.text(value, where)
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"[TCC] {where} expects a JSON str or a list of tool definitions (OpenAI or Anthropic "
            f"shape), got {checks.type_name(value)}{_list_hint(value)}"
        )
    convert = _Convert(where)
    try:
        return sc.dumps(convert.definitions(value))
    except RecursionError:
        raise _too_deep(where) from None


def system_instructions(value: object, where: str) -> str:
    """The ``gen_ai.system_instructions`` JSON (a list of parts): a str is one text part; a list
    holds content blocks, such as the text blocks of Anthropic's ``system=`` parameter."""
    if isinstance(value, str):
        return sc.text_parts(checks.text(value, where))
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"[TCC] {where} expects a str or a list of content blocks, got {checks.type_name(value)}"
        )
    convert = _Convert(where)
    try:
        return sc.dumps(convert.parts(value, "the system instructions", "system instruction"))
    except RecursionError:
        raise _too_deep(where) from None


def with_finish_reason(messages_json: str, finish_reason: str) -> str:
    """Output messages JSON from ``output_messages()`` with ``finish_reason`` set on every message,
    for a finish reason given after the response. ``finish_reason`` must be checked already."""
    messages = json.loads(messages_json)
    for message in messages:
        message["finish_reason"] = finish_reason
    return sc.dumps(messages)


def _list_hint(value: object) -> str:
    # One message or definition passed alone is the likely mistake; say how to pass it.
    return " (put a single one in a list)" if _as_mapping(value) is not None else ""


def _too_deep(where: str) -> ValueError:
    return ValueError(f"[TCC] {where} expects values JSON can hold: they nest too deeply")


def _model_dump(value: object) -> object:
    """What ``value.model_dump()`` gives for a pydantic v2 object (the OpenAI and Anthropic SDK
    types), or ``_NO_DUMP`` for anything else. None fields are left out, as the SDKs send them."""
    if isinstance(value, type):  # a model class, not an instance: its model_dump is unbound
        return _NO_DUMP
    dump = getattr(value, "model_dump", None)
    if not callable(dump):
        return _NO_DUMP
    try:
        return dump(exclude_none=True)
    except TypeError:
        pass  # a model_dump() that takes no such keyword: not pydantic v2, but the same idea
    except Exception:
        return _NO_DUMP  # a model_dump() that fails: the caller says what it expected instead
    try:
        return dump()
    except Exception:
        return _NO_DUMP


def _as_mapping(value: object) -> Mapping[str, object] | None:
    if isinstance(value, dict | Mapping):
        return value
    dumped = _model_dump(value)
    return dumped if isinstance(dumped, Mapping) else None


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not fail the caller's setter
        return f"<{checks.type_name(value)} object>"


class _Convert:
    """One conversion: the call it is for, and the user's containers being walked."""

    __slots__ = ("_open", "where")

    def __init__(self, where: str) -> None:
        self.where = where
        # ids of the containers on the current path, to catch one that contains itself. They are
        # alive while on the path, so their ids cannot be reused by another object meanwhile.
        self._open: set[int] = set()

    # --- walking ----------------------------------------------------------------------------------

    def enter(self, container: object, label: str) -> None:
        key = id(container)
        if key in self._open:
            raise self.cycle(label)
        self._open.add(key)

    def guard(self, item: object, label: str) -> None:
        """Raise if ``item`` is one of the containers being walked: a list or dict inside itself."""
        if id(item) in self._open:
            raise self.cycle(label)

    def cycle(self, label: str) -> ValueError:
        return ValueError(
            f"[TCC] {self.where} expects values without cycles: {label} is a list or dict "
            "that contains itself"
        )

    def leave(self, container: object) -> None:
        self._open.discard(id(container))

    def text(self, value: str) -> str:
        return checks.text(value, self.where)

    def optional_text(self, value: object) -> str | None:
        return checks.text(value, self.where) if isinstance(value, str) else None

    def value(self, value: object, label: str) -> object:
        """Any value as JSON can hold it, for what is kept as given (tool arguments, generic parts)."""
        if isinstance(value, str):
            return checks.text(value, self.where)
        if value is None or isinstance(value, int):  # bool is an int
            return value
        if isinstance(value, float):
            # JSON has no NaN or infinity; the repr keeps what the value was.
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, dict | Mapping):
            self.enter(value, label)
            out = {self.key(key): self.value(item, label) for key, item in value.items()}
            self.leave(value)
            return out
        if isinstance(value, list | tuple):
            self.enter(value, label)
            items = [self.value(item, label) for item in value]
            self.leave(value)
            return items
        dumped = _model_dump(value)
        if isinstance(dumped, dict | Mapping):  # not any result: a Mock's model_dump() gives a Mock
            return self.value(dumped, label)
        # Not JSON (bytes, sets, datetimes, other objects): its repr is recorded rather than failing
        # the call, so a stray value in a block nobody asked about cannot lose the whole prompt.
        return checks.text(_repr(value), self.where)

    def key(self, key: object) -> str:
        return checks.text(key if isinstance(key, str) else _repr(key), self.where)

    def generic(self, kind: str, block: Mapping[str, object], label: str) -> Part:
        """A block of a type without a GenAI counterpart: its type and its other fields as given."""
        part: Part = {"type": self.text(kind)}
        for key, item in block.items():
            if key != "type":
                part[self.key(key)] = self.value(item, label)
        return part

    # --- messages ---------------------------------------------------------------------------------

    def messages(self, items: list[object] | tuple[object, ...]) -> list[Message]:
        self.enter(items, "the list of messages")
        out = [self.message(item, f"message {index}") for index, item in enumerate(items)]
        self.leave(items)
        return out

    def message(self, item: object, label: str, default_role: str | None = None) -> Message:
        message = _as_mapping(item)
        if message is None:
            self.guard(item, label)  # a list inside itself says so, rather than its type
            raise TypeError(
                f"[TCC] {self.where} expects each chat message as a dict or an SDK object with "
                f"model_dump(), got {checks.type_name(item)} for {label}"
            )
        self.enter(message, label)
        role = message.get("role", default_role)
        if role is None:
            raise ValueError(f"[TCC] {self.where} {label} has no 'role'")
        if not isinstance(role, str) or not role or role.isspace():
            shown = repr(role) if isinstance(role, str) else checks.type_name(role)
            raise ValueError(f"[TCC] {self.where} {label} has a 'role' that is not a non-empty str: {shown}")
        # Roles the convention does not list are kept as given: the convention's role is open.
        genai_role = _ROLES.get(role) or self.text(role)
        content = message.get("content")
        parts: list[Part]
        if content is None and "parts" in message:
            # Already in the GenAI format: its parts pass through as given.
            parts = self.parts(message["parts"], f"{label} parts", label)
        elif genai_role == "tool":
            parts = [self.tool_message_response(message, content, label)]
        else:
            parts = self.message_parts(message, content, label)
            if genai_role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
                # Anthropic sends tool results as a user message; the convention's role for it is tool.
                genai_role = "tool"
        out: Message = {"role": genai_role, "parts": parts}
        name = message.get("name")
        if isinstance(name, str):
            out["name"] = self.text(name)
        self.leave(message)
        return out

    def message_parts(self, message: Mapping[str, object], content: object, label: str) -> list[Part]:
        parts: list[Part] = []
        # OpenAI-compatible servers (DeepSeek, vLLM) put the model's reasoning beside the content.
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            parts.append({"type": "reasoning", "content": self.text(reasoning)})
        if isinstance(content, str):
            parts.append({"type": "text", "content": self.text(content)})
        elif isinstance(content, list | tuple):
            self.enter(content, f"{label} content")
            for index, block in enumerate(content):
                parts.append(self.part(block, f"{label} part {index}"))
            self.leave(content)
        elif content is not None:
            raise ValueError(
                f"[TCC] {self.where} {label} has a 'content' that is neither a str nor a list of "
                f"parts: {checks.type_name(content)}"
            )
        refusal = message.get("refusal")
        if isinstance(refusal, str):
            parts.append({"type": "text", "content": self.text(refusal)})
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list | tuple):
            self.tool_calls(tool_calls, label, parts)
        function_call = message.get("function_call")
        if function_call is not None:  # the legacy form of one tool call, without an id
            call = _as_mapping(function_call)
            name = call.get("name") if call is not None else None
            if call is None or not isinstance(name, str):
                raise ValueError(f"[TCC] {self.where} {label} has a 'function_call' without a 'name'")
            parts.append(self.tool_call(None, name, self.arguments(call.get("arguments"), label)))
        audio = message.get("audio")
        if audio is not None:  # OpenAI audio output: an id, base64 data and a transcript
            audio_fields = _as_mapping(audio)
            if audio_fields is not None:
                parts.append(self.generic("audio", audio_fields, f"{label} audio"))
        if not parts and content is None:
            raise ValueError(f"[TCC] {self.where} {label} has no 'content'")
        return parts

    def tool_message_response(self, message: Mapping[str, object], content: object, label: str) -> Part:
        """OpenAI's tool (and legacy function) message: the result of one tool call."""
        response: object
        if isinstance(content, str):
            response = self.text(content)
        elif isinstance(content, list | tuple):
            parts = self.parts(content, f"{label} content", label)
            texts = [t for p in parts if p["type"] == "text" and isinstance(t := p.get("content"), str)]
            # Text only, as OpenAI allows for tool messages: the one string the model will read.
            response = "".join(texts) if len(texts) == len(parts) else parts
        elif content is None:
            raise ValueError(f"[TCC] {self.where} {label} has no 'content'")
        else:
            raise ValueError(
                f"[TCC] {self.where} {label} has a 'content' that is neither a str nor a list of "
                f"parts: {checks.type_name(content)}"
            )
        return {
            "type": "tool_call_response",
            "id": self.optional_text(message.get("tool_call_id")),
            "response": response,
        }

    def tool_calls(self, calls: list[object] | tuple[object, ...], label: str, parts: list[Part]) -> None:
        self.enter(calls, f"{label} tool_calls")
        for index, item in enumerate(calls):
            call_label = f"{label} tool call {index}"
            call = _as_mapping(item)
            if call is None:
                self.guard(item, call_label)
                raise TypeError(
                    f"[TCC] {self.where} expects each tool call as a dict or an SDK object, "
                    f"got {checks.type_name(item)} for {call_label}"
                )
            self.enter(call, call_label)
            part: Part | None = None
            function = call.get("function")
            custom = call.get("custom")
            if function is not None:
                fields = _as_mapping(function)
                name = fields.get("name") if fields is not None else None
                if fields is not None and isinstance(name, str):
                    arguments = self.arguments(fields.get("arguments"), call_label)
                    part = self.tool_call(call.get("id"), name, arguments)
            elif custom is not None:  # OpenAI custom tools: free-text input instead of JSON arguments
                fields = _as_mapping(custom)
                name = fields.get("name") if fields is not None else None
                if fields is not None and isinstance(name, str):
                    part = self.tool_call(call.get("id"), name, self.value(fields.get("input"), call_label))
            if part is None:
                kind = call.get("type")
                if not isinstance(kind, str):
                    raise ValueError(f"[TCC] {self.where} {call_label} has no 'function' with a 'name'")
                part = self.generic(kind, call, call_label)
            self.leave(call)
            parts.append(part)
        self.leave(calls)

    def tool_call(self, call_id: object, name: str, arguments: object) -> Part:
        return {
            "type": "tool_call",
            "id": self.optional_text(call_id),
            "name": self.text(name),
            "arguments": arguments,
        }

    def arguments(self, arguments: object, label: str) -> object:
        """OpenAI sends tool arguments as a JSON string: recorded parsed when it is a JSON object,
        else as the string the model wrote (models do write invalid JSON; it is worth seeing)."""
        if isinstance(arguments, str):
            if arguments.lstrip().startswith("{"):
                try:
                    parsed = json.loads(arguments)
                except (ValueError, RecursionError):
                    parsed = None
                if isinstance(parsed, dict):
                    # Parsed JSON may hold escaped lone surrogates or NaN: checked like any value.
                    return self.value(parsed, label)
            return self.text(arguments)
        return self.value(arguments, label)

    # --- content blocks ---------------------------------------------------------------------------

    def parts(self, blocks: object, list_label: str, label: str) -> list[Part]:
        if not isinstance(blocks, list | tuple):
            raise ValueError(
                f"[TCC] {self.where} {list_label} is not a list of parts: {checks.type_name(blocks)}"
            )
        self.enter(blocks, list_label)
        parts = [self.part(block, f"{label} part {index}") for index, block in enumerate(blocks)]
        self.leave(blocks)
        return parts

    def part(self, item: object, label: str) -> Part:
        if isinstance(item, str):  # a bare string in a content list is plain text
            return {"type": "text", "content": self.text(item)}
        block = _as_mapping(item)
        if block is None:
            self.guard(item, label)
            raise TypeError(
                f"[TCC] {self.where} expects each content part as a dict or an SDK object, "
                f"got {checks.type_name(item)} for {label}"
            )
        self.enter(block, label)
        kind = block.get("type")
        if not isinstance(kind, str):
            raise ValueError(f"[TCC] {self.where} {label} has no 'type'")
        part = self.known_part(kind, block, label)
        if part is None:
            # Unknown types, and known ones missing their fields, are kept whole so nothing is lost.
            part = self.generic(kind, block, label)
        self.leave(block)
        return part

    def known_part(self, kind: str, block: Mapping[str, object], label: str) -> Part | None:
        """The GenAI part for an OpenAI content part or an Anthropic content block, or None."""
        if kind == "text":  # both SDKs
            text = block.get("text")
            if isinstance(text, str):
                return {"type": "text", "content": self.text(text)}
        elif kind == "image_url":  # OpenAI
            image = block.get("image_url")
            fields = _as_mapping(image) if image is not None else None
            url = image if isinstance(image, str) else fields.get("url") if fields is not None else None
            if isinstance(url, str):
                return self.url_part(url, "image")
        elif kind == "tool_use":  # Anthropic
            name = block.get("name")
            if isinstance(name, str):
                return self.tool_call(block.get("id"), name, self.value(block.get("input"), label))
        elif kind == "tool_result":  # Anthropic
            return self.tool_result(block, label)
        elif kind == "image":  # Anthropic
            return self.anthropic_image(block)
        elif kind == "thinking":  # Anthropic
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                return {"type": "reasoning", "content": self.text(thinking)}
        elif kind == "input_audio":  # OpenAI
            audio = block.get("input_audio")
            fields = _as_mapping(audio) if audio is not None else None
            data = fields.get("data") if fields is not None else None
            if fields is not None and isinstance(data, str):
                blob: Part = {"type": "blob", "modality": "audio"}
                audio_format = fields.get("format")
                if isinstance(audio_format, str) and audio_format:
                    blob["mime_type"] = self.text("audio/" + audio_format)
                blob["content"] = self.text(data)
                return blob
        elif kind == "refusal":  # OpenAI
            refusal = block.get("refusal")
            if isinstance(refusal, str):
                return {"type": "text", "content": self.text(refusal)}
        return None

    def tool_result(self, block: Mapping[str, object], label: str) -> Part | None:
        content = block.get("content")
        response: object
        if isinstance(content, str):
            response = self.text(content)
        elif isinstance(content, list | tuple):
            response = self.parts(content, f"{label} content", label)
        elif content is None:  # Anthropic allows a result without content
            response = None
        else:
            return None
        part: Part = {
            "type": "tool_call_response",
            "id": self.optional_text(block.get("tool_use_id")),
            "response": response,
        }
        if block.get("is_error") is True:  # the convention has no field for it; kept so it is not lost
            part["is_error"] = True
        return part

    def anthropic_image(self, block: Mapping[str, object]) -> Part | None:
        source = block.get("source")
        fields = _as_mapping(source) if source is not None else None
        if fields is None:
            return None
        kind = fields.get("type")
        if kind == "base64":
            data = fields.get("data")
            if isinstance(data, str):
                blob: Part = {"type": "blob", "modality": "image"}
                media_type = fields.get("media_type")
                if isinstance(media_type, str):
                    blob["mime_type"] = self.text(media_type)
                blob["content"] = self.text(data)
                return blob
        elif kind == "url":
            url = fields.get("url")
            if isinstance(url, str):
                return {"type": "uri", "modality": "image", "uri": self.text(url)}
        elif kind == "file":  # uploaded with the Files API: the convention's file part
            file_id = fields.get("file_id")
            if isinstance(file_id, str):
                return {"type": "file", "modality": "image", "file_id": self.text(file_id)}
        return None

    def url_part(self, url: str, modality: str) -> Part:
        """A URI part, or a blob for a base64 data URL (``data:<mime>;base64,<data>``)."""
        if url.startswith("data:"):
            comma = url.find(",")
            header = url[5:comma]
            if comma > 0 and header.endswith(";base64"):
                blob: Part = {"type": "blob", "modality": modality}
                if len(header) > 7:
                    blob["mime_type"] = self.text(header[:-7])
                blob["content"] = self.text(url[comma + 1 :])
                return blob
        return {"type": "uri", "modality": modality, "uri": self.text(url)}

    # --- outputs and definitions ------------------------------------------------------------------

    def outputs(self, value: Mapping[str, object], explicit: str | None) -> tuple[list[Message], str | None]:
        choices = value.get("choices")
        if "role" in value or not isinstance(choices, list | tuple):
            message, found = self.output(value, explicit, "the message")
            return [message], found
        # An OpenAI ChatCompletion: one output message per choice.
        if not choices:
            raise ValueError(f"[TCC] {self.where} got a chat completion without choices")
        self.enter(choices, "the choices")
        messages: list[Message] = []
        first: str | None = None
        for index, item in enumerate(choices):
            choice = _as_mapping(item)
            if choice is None:
                self.guard(item, f"choice {index}")
                raise TypeError(
                    f"[TCC] {self.where} expects each choice as a dict or an SDK object, "
                    f"got {checks.type_name(item)} for choice {index}"
                )
            message, found = self.output(choice, explicit, f"choice {index}")
            messages.append(message)
            if first is None:
                first = found
        self.leave(choices)
        return messages, first

    def output(
        self, value: Mapping[str, object], explicit: str | None, label: str
    ) -> tuple[Message, str | None]:
        inner = value.get("message") if "role" not in value else None
        if inner is not None:  # an OpenAI choice: message, finish_reason, index
            self.enter(value, label)
            message = self.message(inner, f"{label} message")
            self.leave(value)
            found = value.get("finish_reason")
        else:
            # An Anthropic Message always says role assistant; one built by hand may leave it out.
            default_role = "assistant" if value.get("type") == "message" else None
            message = self.message(value, label, default_role)
            found = value.get("finish_reason")
            if not isinstance(found, str):
                found = value.get("stop_reason")
        reason = self.optional_text(found)
        if explicit is not None:
            message["finish_reason"] = explicit
        elif reason is not None:
            message["finish_reason"] = reason
        return message, reason

    def definitions(self, items: list[object] | tuple[object, ...]) -> list[object]:
        self.enter(items, "the list of tool definitions")
        out: list[object] = []
        for index, item in enumerate(items):
            definition = _as_mapping(item)
            if definition is None:
                self.guard(item, f"tool definition {index}")
                raise TypeError(
                    f"[TCC] {self.where} expects each tool definition as a dict or an SDK object with "
                    f"model_dump(), got {checks.type_name(item)} for tool definition {index}"
                )
            out.append(self.value(definition, f"tool definition {index}"))
        self.leave(items)
        return out
