"""Replay mode: recorded answers per (model, prompt), streamed like any answer, with the
verdict on the side (POST /_sim/verdict)."""

import json

import httpx
import pytest

from simulator.replay import STRONG_MODEL, WEAK_MODEL, ReplayBook
from tests.live import start_simulator
from tests.simulator.helpers import oai, tok

MATH = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ROWS = [
    {"id": "gsm8k-1", "dataset": "gsm8k", "subject": None, "prompt": MATH, "weak_correct": False,
     "strong_correct": True, "weak_response": " Tom has 3 + 4 = 8 apples.\n#### 8",
     "strong_response": "Tom starts with 3 apples and buys 4, so 3 + 4 = 7.\n#### 7"},
    {"id": "mmlu-1", "dataset": "mmlu", "subject": "x", "prompt": "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
     "weak_correct": True, "strong_correct": True, "weak_response": None, "strong_response": None},
    {"id": "mmlu-2", "dataset": "mmlu", "subject": "x", "prompt": "Q2?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
     "weak_correct": False, "strong_correct": True, "weak_response": None, "strong_response": None},
    # The same prompt again, with the opposite outcome: the first row wins.
    {"id": "mmlu-3", "dataset": "mmlu", "subject": "x", "prompt": "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
     "weak_correct": False, "strong_correct": False, "weak_response": None, "strong_response": None},
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("replay")
    by_file: dict[str, list[dict]] = {}
    for row in ROWS:
        by_file.setdefault(row["dataset"], []).append(row)
    for name, rows in by_file.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def replay_sim(data_dir):
    url, stop = start_simulator(fast=True, replay=data_dir)
    yield url
    stop()


def verdict(url: str, model: str, prompt: str) -> dict:
    response = httpx.post(f"{url}/_sim/verdict", json={"model": model, "prompt": prompt})
    assert response.status_code == 200
    return response.json()


def test_the_book_indexes_prompts_and_keeps_the_first_of_a_duplicate(data_dir):
    book = ReplayBook(data_dir)
    assert book.summary() == {"directory": str(data_dir), "prompts": 3, "datasets": {"gsm8k": 1, "mmlu": 2},
                              "duplicates_skipped": 1}
    first = book.find(WEAK_MODEL, "  " + ROWS[1]["prompt"] + "\n")
    assert first.id == "mmlu-1" and first.correct == {STRONG_MODEL: True, WEAK_MODEL: True}
    assert book.find("gpt-4o", MATH) is None
    assert book.find(STRONG_MODEL, "Something else") is None


def test_one_letter_answers_agree_exactly_when_both_models_were_right(data_dir):
    book = ReplayBook(data_dir)
    both = book.find(STRONG_MODEL, ROWS[1]["prompt"])
    assert both.answer(STRONG_MODEL) == both.answer(WEAK_MODEL)
    assert both.answer(STRONG_MODEL) in "ABCD" and len(both.answer(STRONG_MODEL)) == 1
    split = book.find(STRONG_MODEL, ROWS[2]["prompt"])
    assert split.answer(STRONG_MODEL) != split.answer(WEAK_MODEL)
    assert {split.answer(STRONG_MODEL), split.answer(WEAK_MODEL)} <= set("ABCD")


def test_a_malformed_row_or_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        ReplayBook(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "prompt": "p"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        ReplayBook(tmp_path)


def test_each_model_answers_with_its_recorded_text_and_the_verdict_rides_on_the_side(replay_sim):
    assert httpx.get(f"{replay_sim}/_sim/replay").json()["prompts"] == 3
    messages = [{"role": "system", "content": "Solve it."}, {"role": "user", "content": MATH}]
    for model, text, good in ((WEAK_MODEL, ROWS[0]["weak_response"], False),
                              (STRONG_MODEL, ROWS[0]["strong_response"], True)):
        answer = oai(replay_sim).chat.completions.create(model=model, messages=messages)
        assert answer.choices[0].message.content == text
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage.completion_tokens == tok(text)
        assert verdict(replay_sim, model, MATH) == {"known": True, "good": good, "source": "replay",
                                                   "dataset": "gsm8k", "id": "gsm8k-1"}


def test_a_recorded_answer_streams_token_by_token_and_obeys_max_tokens(replay_sim):
    text = ROWS[0]["strong_response"]
    chunks = list(oai(replay_sim).chat.completions.create(
        model=STRONG_MODEL, messages=[{"role": "user", "content": MATH}], stream=True))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == text and len(deltas) == tok(text)
    cut = oai(replay_sim).chat.completions.create(model=STRONG_MODEL, messages=[{"role": "user", "content": MATH}],
                                                  max_tokens=5)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5
    assert text.startswith(cut.choices[0].message.content)


def test_other_models_and_prompts_get_ordinary_answers_and_no_verdict(replay_sim):
    other = oai(replay_sim).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": MATH}])
    assert other.choices[0].message.content.startswith('[gpt-4o] You asked: "')
    assert verdict(replay_sim, "gpt-4o", MATH) == {"known": False}
    assert verdict(replay_sim, STRONG_MODEL, "Not in the data") == {"known": False}
    assert httpx.post(f"{replay_sim}/_sim/verdict", json={"model": 1}).status_code == 400
    assert httpx.post(f"{replay_sim}/_sim/verdict", content=b"[").status_code == 400


def test_without_a_replay_directory_nothing_is_replayed(sim):
    assert httpx.get(f"{sim}/_sim/replay").json() == {"directory": "", "prompts": 0, "datasets": {},
                                                      "duplicates_skipped": 0}
    answer = oai(sim).chat.completions.create(model=STRONG_MODEL, messages=[{"role": "user", "content": MATH}])
    assert answer.choices[0].message.content.startswith(f'[{STRONG_MODEL}] You asked: "')
