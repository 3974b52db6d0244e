"""Chat messages in the OpenAI and Anthropic shapes, converted to the GenAI message JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextcompany import _checks as checks
from contextcompany._messages import (
    input_messages,
    output_messages,
    system_instructions,
    tool_definitions,
    with_finish_reason,
)

WHERE_IN = "s.prompt(text=...)"
WHERE_OUT = "s.response(text=...)"
WHERE_TOOLS = "s.tool_definitions(definitions=...)"


def parsed(value: str) -> Any:
    return json.loads(value)


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


# --- SDK-like objects: the part of pydantic v2 the converter relies on -----------------------------


class FakeModel:
    """Mimics a pydantic v2 model: fields as attributes, model_dump() recursing into nested models."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        def dump(value: Any) -> Any:
            if isinstance(value, FakeModel):
                return value.model_dump(exclude_none=exclude_none)
            if isinstance(value, list):
                return [dump(item) for item in value]
            return value

        return {k: dump(v) for k, v in self.__dict__.items() if not (exclude_none and v is None)}


class OldStyleModel:
    """An object whose model_dump() takes no keyword arguments."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def model_dump(self) -> dict[str, Any]:
        return dict(self.fields)


def openai_message(**fields: Any) -> FakeModel:
    # ChatCompletionMessage has every field, most of them None.
    base: dict[str, Any] = {
        "content": None,
        "refusal": None,
        "role": "assistant",
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    base.update(fields)
    return FakeModel(**base)


def openai_tool_call(call_id: str, name: str, arguments: str) -> FakeModel:
    return FakeModel(id=call_id, type="function", function=FakeModel(name=name, arguments=arguments))


def anthropic_message(content: list[FakeModel], stop_reason: str | None) -> FakeModel:
    return FakeModel(
        id="msg_01",
        type="message",
        role="assistant",
        model="claude-sonnet-4-5",
        content=content,
        stop_reason=stop_reason,
        stop_sequence=None,
        usage=FakeModel(input_tokens=10, output_tokens=5),
    )


# --- Input messages: OpenAI ------------------------------------------------------------------------


def test_str_prompt_is_one_user_message() -> None:
    assert input_messages("Hi", WHERE_IN) == '[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]'


def test_openai_conversation() -> None:
    messages = [
        {"role": "system", "content": "You are a weather agent."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {
            "role": "user",
            "name": "alice",
            "content": [
                {"type": "text", "text": "What is on these pictures?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-123"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "London"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz": "Europe/London"'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "15°C and cloudy"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "12:00"}, {"type": "text", "text": " BST"}],
        },
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        {"role": "assistant", "content": None, "refusal": "No."},
    ]
    assert parsed(input_messages(messages, WHERE_IN)) == [
        {"role": "system", "parts": [text("You are a weather agent.")]},
        {"role": "system", "parts": [text("Use metric units.")]},
        {
            "role": "user",
            "parts": [
                text("What is on these pictures?"),
                {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"},
                {"type": "blob", "modality": "image", "mime_type": "image/jpeg", "content": "/9j/4AAQ"},
                {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "UklGRg=="},
                {"type": "file", "file": {"file_id": "file-123"}},
            ],
            "name": "alice",
        },
        {
            "role": "assistant",
            "parts": [
                text("Checking."),
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "London"}},
                {
                    "type": "tool_call",
                    "id": "call_2",
                    "name": "get_time",
                    "arguments": '{"tz": "Europe/London"',
                },
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "15°C and cloudy"}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_2", "response": "12:00 BST"}]},
        {"role": "assistant", "parts": [text("I can't help with that.")]},
        {"role": "assistant", "parts": [text("No.")]},
    ]


def test_openai_odd_but_valid_shapes() -> None:
    messages = [
        # A data URL that is not base64 stays a URI; image_url given as a bare str.
        {"role": "user", "content": [{"type": "image_url", "image_url": "data:text/plain,hi"}]},
        # Legacy function calling: function_call on the assistant, role function for the result.
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "done"},
        # Arguments that are JSON but not an object are kept as the string the model wrote.
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "g", "arguments": "[1, 2]"}}]},
        # Reasoning beside the content, as OpenAI-compatible servers send it.
        {"role": "assistant", "content": "4", "reasoning_content": "2 + 2"},
        # An unknown role is kept as given.
        {"role": "critic", "content": "Fine."},
    ]
    assert parsed(input_messages(messages, WHERE_IN)) == [
        {"role": "user", "parts": [{"type": "uri", "modality": "image", "uri": "data:text/plain,hi"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": None, "name": "f", "arguments": {}}]},
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": None, "response": "done"}],
            "name": "f",
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c", "name": "g", "arguments": "[1, 2]"}],
        },
        {"role": "assistant", "parts": [{"type": "reasoning", "content": "2 + 2"}, text("4")]},
        {"role": "critic", "parts": [text("Fine.")]},
    ]


def test_messages_already_in_the_genai_format_pass_through() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "1", "name": "f", "arguments": {}}]},
    ]
    assert parsed(input_messages(messages, WHERE_IN)) == messages


# --- Input messages: Anthropic ---------------------------------------------------------------------


def test_anthropic_conversation() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?", "cache_control": {"type": "ephemeral"}},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_01"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Hi"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_map", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "Map:"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
                        },
                    ],
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_3"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {"role": "assistant", "content": "Sunny."},
    ]
    assert parsed(input_messages(messages, WHERE_IN)) == [
        {
            "role": "user",
            "parts": [
                text("What is in this image?"),
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0K"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.jpg"},
                {"type": "file", "modality": "image", "file_id": "file_01"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Hi"}},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "The user wants the weather."},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                text("Let me check."),
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"type": "tool_call", "id": "toolu_2", "name": "get_map", "arguments": {"city": "Paris"}},
            ],
        },
        {
            # Only tool results: the convention's role for them is tool.
            "role": "tool",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_1", "response": "18°C"},
                {
                    "type": "tool_call_response",
                    "id": "toolu_2",
                    "response": [
                        text("Map:"),
                        {"type": "blob", "modality": "image", "mime_type": "image/gif", "content": "R0lG"},
                    ],
                    "is_error": True,
                },
            ],
        },
        {
            # A tool result next to text stays a user message.
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_3", "response": None},
                text("And tomorrow?"),
            ],
        },
        {"role": "assistant", "parts": [text("Sunny.")]},
    ]


def test_sdk_objects_and_dicts_mix_in_one_list() -> None:
    # The common loop: messages.append(completion.choices[0].message), then a dict tool result.
    assistant = openai_message(tool_calls=[openai_tool_call("call_9", "lookup", '{"id": 7}')])
    messages = [
        {"role": "user", "content": "Look up 7"},
        assistant,
        {"role": "tool", "tool_call_id": "call_9", "content": "found"},
        # A dict built from SDK pieces, as people write it.
        {"role": "assistant", "tool_calls": assistant.__dict__["tool_calls"]},
        OldStyleModel({"role": "user", "content": "thanks"}),
    ]
    assert parsed(input_messages(messages, WHERE_IN)) == [
        {"role": "user", "parts": [text("Look up 7")]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"id": 7}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_9", "response": "found"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"id": 7}}],
        },
        {"role": "user", "parts": [text("thanks")]},
    ]


def test_values_json_cannot_hold_become_their_repr() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "custom_block",
                    "blob": b"\x00\x01",
                    "tags": {"a"},
                    "score": float("nan"),
                    7: "int key",
                    "nested": FakeModel(x=1, y=None),
                }
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"x": NaN}'}}],
        },
    ]
    out = input_messages(messages, WHERE_IN)
    assert parsed(out) == [
        {
            "role": "user",
            "parts": [
                {
                    "type": "custom_block",
                    "blob": "b'\\x00\\x01'",
                    "tags": "{'a'}",
                    "score": "nan",
                    "7": "int key",
                    "nested": {"x": 1},
                }
            ],
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c", "name": "f", "arguments": {"x": "nan"}}],
        },
    ]


def test_objects_that_only_look_like_models_become_their_repr() -> None:
    from unittest.mock import Mock

    out = parsed(input_messages([{"role": "user", "content": [{"type": "x", "m": Mock()}]}], WHERE_IN))
    assert out[0]["parts"][0]["m"].startswith("<Mock id=")
    with pytest.raises(TypeError, match="got Mock for message 0"):
        input_messages([Mock()], WHERE_IN)


def test_lone_surrogates_are_fixed_everywhere() -> None:
    messages = [
        {"role": "user", "name": "a\ud800", "content": [{"type": "text", "text": "x\udc00"}]},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c\ud800", "function": {"name": "f", "arguments": '{"q": "\\ud800"}'}}],
        },
        {"role": "user", "content": [{"type": "other", "k\ud800": ["v\udfff"]}]},
    ]
    out = input_messages(messages, WHERE_IN)
    out.encode("utf-8")  # what the OTLP exporter does; raises on a lone surrogate
    assert parsed(out) == [
        {"role": "user", "parts": [text("x\ufffd")], "name": "a\ufffd"},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c\ufffd", "name": "f", "arguments": {"q": "\ufffd"}}],
        },
        {"role": "user", "parts": [{"type": "other", "k\ufffd": ["v\ufffd"]}]},
    ]


# --- Output messages -------------------------------------------------------------------------------


def test_str_response_takes_the_text_path() -> None:
    assert output_messages("Hello", None, WHERE_OUT) == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hello"}]}]',
        None,
    )
    assert output_messages("Hello", "stop", WHERE_OUT) == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hello"}],"finish_reason":"stop"}]',
        "stop",
    )


def test_openai_chat_completion_message_object() -> None:
    message = openai_message(
        content="Let me look.",
        tool_calls=[
            openai_tool_call("call_1", "get_weather", '{"city":"Oslo"}'),
            openai_tool_call("call_2", "get_weather", "{not json"),
        ],
    )
    out, reason = output_messages(message, None, WHERE_OUT)
    assert reason is None
    assert parsed(out) == [
        {
            "role": "assistant",
            "parts": [
                text("Let me look."),
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}},
                {"type": "tool_call", "id": "call_2", "name": "get_weather", "arguments": "{not json"},
            ],
        }
    ]
    out, reason = output_messages(message, "tool_calls", WHERE_OUT)
    assert reason == "tool_calls"
    assert parsed(out)[0]["finish_reason"] == "tool_calls"


def test_openai_choice_object_carries_its_finish_reason() -> None:
    choice = FakeModel(index=0, logprobs=None, finish_reason="stop", message=openai_message(content="Hi!"))
    out, reason = output_messages(choice, None, WHERE_OUT)
    assert reason == "stop"
    assert parsed(out) == [{"role": "assistant", "parts": [text("Hi!")], "finish_reason": "stop"}]
    # The explicit finish reason wins.
    out, reason = output_messages(choice, "length", WHERE_OUT)
    assert reason == "length"
    assert parsed(out) == [{"role": "assistant", "parts": [text("Hi!")], "finish_reason": "length"}]


def test_openai_chat_completion_gives_one_message_per_choice() -> None:
    completion = FakeModel(
        id="chatcmpl-1",
        object="chat.completion",
        model="gpt-4o",
        choices=[
            FakeModel(index=0, finish_reason="length", message=openai_message(content="A")),
            FakeModel(index=1, finish_reason="stop", message=openai_message(content="B")),
        ],
    )
    out, reason = output_messages(completion, None, WHERE_OUT)
    assert reason == "length"
    assert parsed(out) == [
        {"role": "assistant", "parts": [text("A")], "finish_reason": "length"},
        {"role": "assistant", "parts": [text("B")], "finish_reason": "stop"},
    ]


def test_anthropic_message_object() -> None:
    message = anthropic_message(
        [
            FakeModel(type="thinking", thinking="Need the tool.", signature="abc"),
            FakeModel(type="text", text="Checking the weather.", citations=None),
            FakeModel(type="tool_use", id="toolu_1", name="get_weather", input={"city": "Rome"}),
        ],
        "tool_use",
    )
    out, reason = output_messages(message, None, WHERE_OUT)
    assert reason == "tool_use"
    assert parsed(out) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Need the tool."},
                text("Checking the weather."),
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Rome"}},
            ],
            "finish_reason": "tool_use",
        }
    ]
    out, reason = output_messages(message, "stop", WHERE_OUT)
    assert reason == "stop"
    assert parsed(out)[0]["finish_reason"] == "stop"


def test_output_dicts() -> None:
    # An Anthropic Message as a dict (e.g. message.model_dump()), and a hand-built one without a role.
    as_dict = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
    }
    assert output_messages(as_dict, None, WHERE_OUT) == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hi"}],"finish_reason":"end_turn"}]',
        "end_turn",
    )
    no_role = {"type": "message", "content": [{"type": "text", "text": "Hi"}], "stop_reason": None}
    assert output_messages(no_role, None, WHERE_OUT) == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hi"}]}]',
        None,
    )
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Yes"}}
    assert parsed(output_messages(choice, None, WHERE_OUT)[0]) == [
        {"role": "assistant", "parts": [text("Yes")], "finish_reason": "stop"}
    ]


def test_with_finish_reason_sets_it_on_every_message() -> None:
    out, _ = output_messages({"role": "assistant", "content": "Hi"}, None, WHERE_OUT)
    assert parsed(with_finish_reason(out, "stop")) == [
        {"role": "assistant", "parts": [text("Hi")], "finish_reason": "stop"}
    ]


def test_output_errors() -> None:
    with pytest.raises(
        TypeError, match=r"\[TCC\] s\.response\(text=\.\.\.\) expects a str or an assistant message"
    ):
        output_messages(42, None, WHERE_OUT)
    with pytest.raises(TypeError, match=r"s\.response\(text=\.\.\.\) finish_reason expects a str"):
        output_messages("Hi", 1, WHERE_OUT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"s\.response\(text=\.\.\.\) the message has no 'role'"):
        output_messages({"content": "Hi"}, None, WHERE_OUT)
    with pytest.raises(ValueError, match="without choices"):
        output_messages({"choices": []}, None, WHERE_OUT)


# --- System instructions ---------------------------------------------------------------------------


def test_system_instructions() -> None:
    assert (
        system_instructions("Be brief.", "r.prompt(system_prompt=...)")
        == '[{"type":"text","content":"Be brief."}]'
    )
    blocks = [
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be kind."},
    ]
    assert parsed(system_instructions(blocks, "w")) == [text("Be brief."), text("Be kind.")]
    with pytest.raises(TypeError, match=r"\[TCC\] w expects a str or a list of content blocks, got int"):
        system_instructions(3, "w")


# --- Tool definitions ------------------------------------------------------------------------------

OPENAI_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
ANTHROPIC_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Get the weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_tool_definitions_str_passes_through() -> None:
    given_json = '[{"name": "get_weather", "description": "Get the weather for a location"}]'
    assert tool_definitions(given_json, WHERE_TOOLS) == given_json
    assert tool_definitions("bad \ud800", WHERE_TOOLS) == "bad \ufffd"


def test_tool_definitions_lists_are_kept_as_given() -> None:
    assert parsed(tool_definitions([OPENAI_TOOL, ANTHROPIC_TOOL], WHERE_TOOLS)) == [
        OPENAI_TOOL,
        ANTHROPIC_TOOL,
    ]
    assert parsed(tool_definitions((), WHERE_TOOLS)) == []


def test_tool_definitions_sdk_objects() -> None:
    openai_tool = FakeModel(
        type="function", function=FakeModel(name="f", description=None, parameters={"type": "object"})
    )
    anthropic_tool = OldStyleModel(ANTHROPIC_TOOL)
    assert parsed(tool_definitions([openai_tool, anthropic_tool], WHERE_TOOLS)) == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
        ANTHROPIC_TOOL,
    ]


def test_tool_definitions_bad_types() -> None:
    with pytest.raises(
        TypeError,
        match=r"\[TCC\] s\.tool_definitions\(definitions=\.\.\.\) expects a JSON str or a list of tool "
        r"definitions .* got int",
    ):
        tool_definitions(5, WHERE_TOOLS)
    with pytest.raises(TypeError, match=r"got dict \(put a single one in a list\)"):
        tool_definitions(OPENAI_TOOL, WHERE_TOOLS)
    with pytest.raises(TypeError, match=r"got str for tool definition 1"):
        tool_definitions([OPENAI_TOOL, "get_weather"], WHERE_TOOLS)
    cyclic: dict[str, Any] = {"name": "f"}
    cyclic["input_schema"] = {"items": cyclic}
    with pytest.raises(
        ValueError, match=r"s\.tool_definitions\(definitions=\.\.\.\) expects values without cycles"
    ):
        tool_definitions([cyclic], WHERE_TOOLS)


# --- Input errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [42, None, b"hi", 1.5, {1, 2}])
def test_input_wrong_top_level_type(value: object) -> None:
    expected = (
        f"[TCC] s.prompt(text=...) expects a str or a list of chat messages (OpenAI or Anthropic shape), "
        f"got {type(value).__name__}"
    )
    with pytest.raises(TypeError) as info:
        input_messages(value, WHERE_IN)
    assert str(info.value) == expected


def test_input_single_message_gets_a_hint() -> None:
    with pytest.raises(TypeError, match=r"got dict \(put a single one in a list\)"):
        input_messages({"role": "user", "content": "Hi"}, WHERE_IN)


@pytest.mark.parametrize(
    ("messages", "error", "message"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"content": "c"}],
            ValueError,
            "message 2 has no 'role'",
        ),
        (
            [{"role": 3, "content": "a"}],
            ValueError,
            "message 0 has a 'role' that is not a non-empty str: int",
        ),
        (
            [{"role": " ", "content": "a"}],
            ValueError,
            "message 0 has a 'role' that is not a non-empty str: ' '",
        ),
        ([{"role": "user"}], ValueError, "message 0 has no 'content'"),
        ([{"role": "user", "content": None}], ValueError, "message 0 has no 'content'"),
        ([{"role": "tool", "tool_call_id": "c"}], ValueError, "message 0 has no 'content'"),
        (
            [{"role": "user", "content": 5}],
            ValueError,
            "message 0 has a 'content' that is neither a str nor a list of parts: int",
        ),
        ([{"role": "user", "content": [{"text": "no type"}]}], ValueError, "message 0 part 0 has no 'type'"),
        ([{"role": "user", "content": [5]}], TypeError, "got int for message 0 part 0"),
        (["Hi"], TypeError, "got str for message 0"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c"}]}],
            ValueError,
            "message 0 tool call 0 has no 'function' with a 'name'",
        ),
        (
            [{"role": "assistant", "function_call": {"arguments": "{}"}}],
            ValueError,
            "message 0 has a 'function_call' without a 'name'",
        ),
    ],
)
def test_input_bad_messages(messages: list[Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        input_messages(messages, WHERE_IN)
    assert str(info.value).startswith("[TCC] s.prompt(text=...) ")
    assert message in str(info.value)


def test_recursion_raises_value_error_naming_the_call() -> None:
    itself: list[Any] = []
    itself.append(itself)
    with pytest.raises(
        ValueError, match=r"\[TCC\] s\.prompt\(text=\.\.\.\) expects values without cycles: message 0"
    ):
        input_messages(itself, WHERE_IN)
    content: list[Any] = [{"type": "text", "text": "a"}]
    content.append(content)
    with pytest.raises(ValueError, match="message 0 part 1 is a list or dict that contains itself"):
        input_messages([{"role": "user", "content": content}], WHERE_IN)
    block: dict[str, Any] = {"type": "tool_use", "id": "t", "name": "f"}
    block["input"] = {"again": block}
    with pytest.raises(ValueError, match="expects values without cycles"):
        input_messages([{"role": "assistant", "content": [block]}], WHERE_IN)
    message: dict[str, Any] = {"role": "assistant"}
    message["choices"] = [message]
    message["content"] = [{"type": "x", "m": message}]
    with pytest.raises(ValueError, match=r"s\.response\(text=\.\.\.\) expects values without cycles"):
        output_messages(message, None, WHERE_OUT)


def test_deep_nesting_raises_value_error() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(
        ValueError,
        match=r"\[TCC\] s\.prompt\(text=\.\.\.\) expects values JSON can hold: they nest too deeply",
    ):
        input_messages([{"role": "user", "content": [{"type": "x", "deep": deep}]}], WHERE_IN)


def test_the_callers_values_are_not_changed() -> None:
    messages = [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        },
        {"role": "user", "content": [{"type": "text", "text": "x\ud800"}]},
    ]
    before = repr(messages)
    input_messages(messages, WHERE_IN)
    assert repr(messages) == before


# --- Properties ------------------------------------------------------------------------------------

# Arbitrary text with lone surrogates mixed in. st.text() merges a union of character strategies
# into one that drops the surrogate category, so the characters are drawn one by one and joined.
ANY_TEXT = st.lists(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]), max_size=40).map(
    "".join
)


def _texts_of(parts: list[dict[str, Any]]) -> list[str]:
    return [p["content"] for p in parts if p["type"] == "text"]


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_str_prompt_is_valid_json_utf8_and_round_trips(value: str) -> None:
    out = input_messages(value, WHERE_IN)
    out.encode("utf-8")
    assert json.loads(out) == [{"role": "user", "parts": [text(checks.text(value, "t"))]}]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["system", "user", "assistant", "developer"]), ANY_TEXT, ANY_TEXT, st.booleans()
        ),
        max_size=5,
    ),
    ANY_TEXT,
)
def test_message_lists_are_valid_json_utf8_and_round_trip(
    specs: list[tuple[str, str, str, bool]], arg_value: str
) -> None:
    messages: list[dict[str, Any]] = []
    for role, first, second, as_blocks in specs:
        content: Any = (
            [{"type": "text", "text": first}, {"type": "text", "text": second}] if as_blocks else first
        )
        messages.append({"role": role, "content": content, "name": second})
    messages.append(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": arg_value, "function": {"name": arg_value, "arguments": json.dumps({"v": arg_value})}}
            ],
        }
    )
    out = input_messages(messages, WHERE_IN)
    out.encode("utf-8")
    result = json.loads(out)
    assert len(result) == len(specs) + 1
    for (_, first, second, as_blocks), message in zip(specs, result, strict=False):
        expected = (
            [checks.text(first, "t"), checks.text(second, "t")] if as_blocks else [checks.text(first, "t")]
        )
        assert _texts_of(message["parts"]) == expected
        assert message["name"] == checks.text(second, "t")
    call = result[-1]["parts"][0]
    assert call["arguments"] == {"v": checks.text(arg_value, "t")}
    assert call["name"] == checks.text(arg_value, "t")
