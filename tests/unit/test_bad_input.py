"""The bad-input table (docs/contracts.md) at the validation step, without a server: every
sample of a class that validation decides ends with its stage, every dangerous-looking valid
record passes unchanged. (The end-to-end outcome, dead letters included, is
tests/integration/test_poison.py's.)"""

from __future__ import annotations

import json

import pytest

from bookstore.schemas import Order, Rejected, parse
from tests import poison
from tests.support import TOPICS

CUSTOMER = "6f1c2f4e-8a43-4f0e-9a1b-0c6d1e2f3a4b"
SAMPLES = poison.classes("unit", CUSTOMER, "unit-vol")
LIMIT = 512 * 1024  # the suites' RECORD_MAX_BYTES: the too-large sample is over it


@pytest.mark.parametrize("bad_class", SAMPLES)
def test_each_sample_is_refused_at_its_stage_with_a_reason(bad_class):
    for bad in SAMPLES[bad_class]:
        with pytest.raises(Rejected) as refused:
            parse(TOPICS.entity(bad.topic).model_class(), bad.value, LIMIT)
        assert refused.value.stage == bad.stage, (bad_class, bad.value[:80] if bad.value else None)
        assert refused.value.reason and "\n" not in refused.value.reason


def test_valid_records_that_look_dangerous_pass():
    for topic, values in poison.verbatim("unit", CUSTOMER, "b").items():
        for value in values:
            parse(TOPICS.entity(topic).model_class(), json.dumps(value).encode(), LIMIT)


def test_a_reason_names_the_field_at_fault():
    bad = poison.order("unit", CUSTOMER, "b", quantity=0)
    with pytest.raises(Rejected) as refused:
        parse(Order, json.dumps(bad).encode(), LIMIT)
    assert "quantity" in refused.value.reason
