"""Secrets in templates: recorded as `***` with slots, filled in late, redacted from answers."""

from __future__ import annotations

import pytest

from domain.errors import ExpressionError
from domain.expressions import Scope, Template, compile_value, render_value
from domain.secrets import names, redact, seal, unseal
from infra.secret_keys import DataKey, MasterKey, SecretsKeyError, new_master_key_text

SCOPE = Scope({"id": 7, "text": "{{ secrets.KEY }}"}, None, {})


def test_a_request_records_stars_and_slots_and_unseals_to_what_is_sent() -> None:
    request = render_value(
        compile_value(
            {
                "url": "https://api.example/{{ input.id }}?k={{ secrets.KEY }}",
                "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
                "body": ["{{ secrets.KEY }}", "{{ input.id }}"],
            },
            secrets=True,
        ),
        SCOPE,
    )

    recorded, slots = seal(request)

    assert recorded == {
        "url": "https://api.example/7?k=***",
        "headers": {"Authorization": "Bearer ***"},
        "body": ["***", 7],
    }
    assert type(recorded["url"]) is str  # plain JSON: nothing of the slots is in it
    assert names(slots) == ["KEY", "TOKEN"]
    sent = unseal(recorded, slots, {"KEY": "k-1", "TOKEN": "t-2"})
    assert sent == {
        "url": "https://api.example/7?k=k-1",
        "headers": {"Authorization": "Bearer t-2"},
        "body": ["k-1", 7],
    }
    assert recorded["body"] == ["***", 7]  # unsealing copies; the record stays as it was


def test_data_that_reads_like_a_secret_reference_stays_text() -> None:
    request = render_value(compile_value({"q": "{{ input.text }}"}, secrets=True), SCOPE)

    recorded, slots = seal(request)

    assert recorded == {"q": "{{ secrets.KEY }}"}
    assert slots == []


@pytest.mark.parametrize(
    "source",
    [
        "{{ secrets[input.name] }}",
        "{{ secrets.KEY + 'x' }}",
        "{{ secrets.lower }}",
        "{{ has(secrets.KEY) }}",
    ],
)
def test_a_secret_chosen_or_built_by_an_expression_does_not_compile(source: str) -> None:
    with pytest.raises(ExpressionError):
        Template(source, secrets=True)


def test_a_template_without_the_right_to_secrets_refuses_them() -> None:
    with pytest.raises(ExpressionError, match="secrets may be used only"):
        Template("{{ secrets.KEY }}")


def test_redaction_reaches_keys_nested_values_and_overlapping_secrets() -> None:
    answer = {"echo": ["abc-long", {"abc": "x abc y"}], "n": 1}

    assert redact(answer, ["abc", "abc-long"]) == {
        "echo": ["***", {"***": "x *** y"}],
        "n": 1,
    }


def test_a_value_is_bound_to_its_tenant_and_name() -> None:
    master = MasterKey.from_base64(new_master_key_text())
    key = DataKey.new("acme")
    sealed = key.encrypt("API_KEY", "a value worth hiding")
    wrapped = master.wrap("acme", key.raw)

    assert (
        DataKey("acme", master.unwrap("acme", wrapped)).decrypt("API_KEY", sealed)
        == "a value worth hiding"
    )
    with pytest.raises(SecretsKeyError):
        key.decrypt("OTHER_NAME", sealed)
    with pytest.raises(SecretsKeyError):
        master.unwrap("globex", wrapped)
    with pytest.raises(SecretsKeyError):
        MasterKey.from_base64(new_master_key_text()).unwrap("acme", wrapped)
    assert "hiding" not in sealed and key.raw.hex() not in wrapped


@pytest.mark.parametrize("text", ["not base64!", "c2hvcnQ="])
def test_a_malformed_master_key_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(SecretsKeyError, match="LOOM_SECRETS_KEY"):
        MasterKey.from_base64(text)
