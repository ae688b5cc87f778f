"""Task skills: whether a model's answer to a prompt of a registered kind is good is fixed
by hashes of the model and the prompt, good on a share `skill` of prompts, and told only
through /_sim/verdict (the kind comes from the benchmark, through /_sim/tasks)."""

import httpx
import pytest

from simulator.skills import DEFAULT_SKILLS, REFUSAL, Skills
from tests.simulator.helpers import oai

PROMPTS = [f"Customer question number {i}: why was my card declined at shop {i * 7}?" for i in range(3000)]


@pytest.fixture
def tasks(sim):
    """The session simulator, with no task kinds registered before or after the test."""
    httpx.delete(f"{sim}/_sim/tasks")
    yield sim
    httpx.delete(f"{sim}/_sim/tasks")


def test_the_verdict_is_a_pure_function_of_model_kind_and_prompt():
    one, other = Skills(), Skills()
    for prompt in PROMPTS[:300]:
        one.tasks[prompt] = other.tasks[prompt] = "code"
        for model in ("gpt-4o", "gpt-4o-mini"):
            assert one.good(model, "code", prompt) == other.good(model, "code", prompt)
            assert one.outcome(model, prompt) == other.outcome(model, prompt)


@pytest.mark.parametrize("model,kind", [("gpt-4o", "support"), ("gpt-4o-mini", "code"),
                                        ("llama-3.1-8b-instruct", "content")])
def test_a_model_is_good_on_about_its_skill_share_of_prompts(model, kind):
    skills = Skills()
    share = sum(skills.good(model, kind, p) for p in PROMPTS) / len(PROMPTS)
    assert abs(share - DEFAULT_SKILLS[model][kind]) < 0.03


def test_models_share_most_of_a_prompts_difficulty_but_not_all():
    skills = Skills()
    strong = [skills.good("gpt-4o", "code", p) for p in PROMPTS]
    weak = [skills.good("gpt-4o-mini", "code", p) for p in PROMPTS]
    only_weak = sum(w and not s for s, w in zip(strong, weak, strict=True))
    only_strong = sum(s and not w for s, w in zip(strong, weak, strict=True))
    assert 0 < only_weak < only_strong


def test_a_registered_prompt_gets_a_kind_shaped_answer_and_a_verdict(tasks):
    prompts = PROMPTS[:200]
    assert httpx.post(f"{tasks}/_sim/tasks", json={"tasks": {p: "support" for p in prompts}}).json() == {"tasks": 200}
    seen = {True: 0, False: 0}
    for prompt in prompts[:60]:
        answer = oai(tasks).chat.completions.create(model="llama-3.1-8b-instruct",
                                                    messages=[{"role": "user", "content": prompt}])
        again = oai(tasks).chat.completions.create(model="llama-3.1-8b-instruct",
                                                   messages=[{"role": "user", "content": prompt}])
        text = answer.choices[0].message.content
        assert text == again.choices[0].message.content and "You asked" not in text
        found = httpx.post(f"{tasks}/_sim/verdict", json={"model": "llama-3.1-8b-instruct", "prompt": prompt}).json()
        assert found["known"] and found["source"] == "skill" and found["kind"] == "support"
        seen[found["good"]] += 1
        if text == REFUSAL or answer.choices[0].finish_reason == "length":
            assert found["good"] is False   # a bad answer may show it; a good one never looks bad
    assert seen[True] and seen[False]


def test_unregistered_prompts_and_bad_registrations(tasks):
    assert httpx.post(f"{tasks}/_sim/verdict", json={"model": "gpt-4o", "prompt": PROMPTS[0]}).json() == {"known": False}
    assert httpx.post(f"{tasks}/_sim/tasks", json={"tasks": {PROMPTS[0]: "poetry"}}).status_code == 400
    assert httpx.post(f"{tasks}/_sim/tasks", json={"tasks": [PROMPTS[0]]}).status_code == 400
    assert httpx.post(f"{tasks}/_sim/skills", json={"gpt-4o": {"code": 1.5}}).status_code == 400
    table = httpx.get(f"{tasks}/_sim/skills").json()
    assert table["skills"]["gpt-4o"] == DEFAULT_SKILLS["gpt-4o"] and table["kinds"] == ["support", "content", "code"]
