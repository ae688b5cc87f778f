"""The heuristic judge's scoring, as a pure function of the request and the answer (no
Django, no network: bench/judge_gsm8k.py runs it offline). Signs of a bad answer:
truncation, refusal, an empty or echoed answer, a missing final answer where the task
needs one, arithmetic that does not check out, JSON that fails the requested schema; and,
for math, a small learned judge over what the worked answer shows (data/math_judge.json,
a logistic regression fitted on labelled answers)."""

import ast
import json
import math
import operator
import re
import sys
from functools import cache
from pathlib import Path

from .classify import CHOICE, MATH

REFUSAL = re.compile(r"^\W*(i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can(not|'t) (help|assist|answer|provide|"
                     r"do that)|as an ai\b|i'?m (not able|unable) to|i am (not able|unable) to)", re.IGNORECASE)
HEDGE = re.compile(r"\b(i'?m not sure|i am not sure|i don'?t know|cannot be determined|not enough information|"
                   r"impossible to (say|determine|know))\b", re.IGNORECASE)
NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
FINAL = re.compile(r"(?:####|answer is|answer:|total(?: of)? is|=)\s*\$?\s*(" + NUMBER + ")", re.IGNORECASE)
# "a op b ... = c" with plain numbers, as worked solutions write them (and GSM8K's <<a*b=c>>).
EQUATION = re.compile(r"((?:\(?\s*-?\d[\d,]*(?:\.\d+)?\s*\)?\s*[-+*/x×÷]\s*)+\(?\s*-?\d[\d,]*(?:\.\d+)?\s*\)?)"
                      r"\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\s*[-+*/x×÷]\s*\d)")
CHOICE_ANSWER = re.compile(r"(?:^|\banswer\b[^A-Za-z]{0,12}|^\W*)\(?([A-E])\)?(?:\W|$)", re.IGNORECASE | re.MULTILINE)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _number(text: str) -> float:
    # A runaway number (400 digits, either sign) is the largest float, not inf: the features
    # divide by the numbers, take their logs and int().
    value = float(text.replace(",", "").replace("$", ""))
    return math.copysign(min(abs(value), sys.float_info.max), value)


def _evaluate(expression: str) -> float | None:
    """The value of + - * / arithmetic on plain numbers, or None (never eval)."""
    cleaned = re.sub(r"(?<=\d),(?=\d{3})", "", expression).replace("×", "*").replace("÷", "/")
    cleaned = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", cleaned)

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(expression)

    try:
        return value(ast.parse(cleaned.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, OverflowError):   # an int past float's range
        return None


def wrong_arithmetic(text: str) -> int:
    """How many written calculations in `text` do not check out (to 1% or a rounding step)."""
    wrong = 0
    for left, right in EQUATION.findall(text):
        expected = _evaluate(left)
        if expected is None:
            continue
        got = _number(right)
        if abs(expected - got) > max(0.011, abs(expected) * 0.01):
            wrong += 1
    return wrong


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _schema_of(response_format: dict | None) -> tuple[bool, dict | None]:
    """(JSON is required, the schema it must meet) from an OpenAI response_format."""
    if not isinstance(response_format, dict):
        return False, None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return True, spec.get("schema") if isinstance(spec, dict) else None
    return kind == "json_object", None


def heuristic_score(*, prompt: str, answer: str | None, finish_reason: str, task: str,
                    response_format: dict | None = None) -> tuple[float, str]:
    """(score, the first problem found, or "ok"). Scores are the strength of the evidence:
    a cut or empty answer is almost surely bad, a hedge only somewhat likely so."""
    text = (answer or "").strip()
    if not text:
        return 0.0, "empty answer"
    if finish_reason in ("length", "content_filter"):
        return 0.05, f"finish_reason={finish_reason}"
    if REFUSAL.search(text[:200]):
        return 0.1, "refusal"
    said, asked = _normalized(text), _normalized(prompt)
    # The prompt said back (whole, or a large part of it: quoting one option is an answer).
    if said and (said == asked or (asked and said in asked and len(said) >= len(asked) / 2)):
        return 0.1, "echoes the prompt"
    wants_json, schema = _schema_of(response_format)
    if wants_json:
        try:
            value = json.loads(text)
        except ValueError:
            return 0.05, "not JSON"
        if schema is not None:
            import jsonschema  # here, not with the module: 3 MB RSS in every worker (bench/startup)

            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as exc:
                return 0.1, f"fails the schema: {exc.message[:60]}"
            except jsonschema.SchemaError:
                pass  # the client's schema is broken, not the answer
    if task == MATH:
        return _math_score(prompt, text)
    if task == CHOICE and not CHOICE_ANSWER.search(text):
        return 0.3, "no option chosen"
    if HEDGE.search(text):
        return 0.4, "hedges"
    return 1.0, "ok"


def _numbers(text: str) -> set[float]:
    return {_number(n) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


# "15 floors * 8 units/floor * 3/4 = 90": a calculation written with unit words between
# its numbers, which EQUATION (plain numbers only) skips.
_WORDED_NUMBER = r"\$?\d[\d,]*(?:\.\d+)?%?"
_UNITS = r"(?:\s+[a-zA-Z/]+){0,2}"
WORDED_EQUATION = re.compile(r"((?:" + _WORDED_NUMBER + _UNITS + r"\s*[-+*/x×÷]\s*)+" + _WORDED_NUMBER + r")" + _UNITS
                             + r"\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_UNIT_WORDS = re.compile(r"(?<=[\d%])\s+[a-zA-Z/]+(?:\s+[a-zA-Z/]+)?(?=\s*[-+*/x×÷]|\s*$)")
RESULT = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
SECOND_THOUGHTS = re.compile(r"\b(however|but|wait|actually|assum\w*|mistake|incorrect|not|since|approximately|"
                             r"about|round\w*|unclear|ambiguous|note|instead|doesn't|does not|already)\b",
                             re.IGNORECASE)


# Words that make a word problem take another step (rates, shares, comparisons).
STEP_WORDS = re.compile(r"\b(half|twice|double|triple|third|quarter|percent|each|per|every|remaining|left|more than|"
                        r"less than|fewer|times)\b|%", re.IGNORECASE)
MARKED_FINAL = re.compile(r"####")


def wrong_worded_arithmetic(text: str) -> int:
    """Calculations with unit words between the numbers that do not check out."""
    wrong = 0
    for left, right in WORDED_EQUATION.findall(text):
        expected = _evaluate(_UNIT_WORDS.sub("", left).replace("$", "").replace("%", "/100"))
        if expected is not None and abs(expected - _number(right)) > max(0.011, abs(expected) * 0.01):
            wrong += 1
    return wrong


def math_features(prompt: str, text: str) -> dict[str, float]:
    """What the learned math judge weighs, all read off the question and the answer text:
    calculations that fail, how the final number relates to the working (the last result
    computed, a number given in the question, a fraction), quantities of the question left
    unused or numbers from nowhere, second thoughts and hedges, final answers that disagree,
    results computed twice, and the sizes of both texts (long questions with many
    quantities, percentages and step words are the ones a cheap model gets wrong)."""
    finals = FINAL.findall(text)
    final = _number(finals[-1]) if finals else None
    results = [_number(r) for r in RESULT.findall(text.split("####")[0])]
    given, used = _numbers(prompt), _numbers(text)
    computed = set(results) | ({final} if final is not None else set())
    largest_given = max(given, default=0.0)
    return {
        "wrong_calculations": min(wrong_arithmetic(text), 3),
        "wrong_worded_calculations": min(wrong_worded_arithmetic(text), 3),
        "given_numbers_unused": min(len(given - used), 4),
        "answer_chars_log": math.log(len(text) + 1),
        "question_chars_log": math.log(len(prompt) + 1),
        "question_numbers": min(len(given), 12),
        "lines": min(sum(1 for line in text.splitlines() if line.strip()), 15),
        "results": min(len(RESULT.findall(text)), 15),
        "fractional_final": float(final is not None and final != int(final)),
        "final_given_in_question": float(final in given) if final is not None else 0.0,
        "final_magnitude_log": min(math.log10(abs(final) + 1), 7) if final is not None else 0.0,
        "second_thoughts": min(len(SECOND_THOUGHTS.findall(text)), 6),
        "numbers_from_nowhere": min(len(used - given - computed), 6),
        "length_ratio_log": math.log((len(text) + 1) / max(len(prompt), 1)),
        "final_is_last_result": float(bool(results) and final is not None and abs(results[-1] - final) < 1e-6),
        "no_marked_final": float(final is None),
        "qualified_final": float(bool(re.search(r"####\s*\S+\s+\S", text))),
        "hedges": float(bool(HEDGE.search(text))),
        "no_hashes_final": float(not MARKED_FINAL.search(text)),
        "distinct_finals": min(len({_number(f) for f in finals}), 4),
        "final_not_computed": float(bool(results) and final is not None and final not in results),
        "final_negative": float(final is not None and final < 0),
        "final_vs_largest_given_log": (math.log10((abs(final) + 1) / (largest_given + 1))
                                       if final is not None else 0.0),
        "ends_with_digit": float(text[-1:].isdigit()),
        "annotations": min(text.count("<<"), 10),
        "repeated_results": 1.0 - len(set(results)) / len(results) if results else 0.0,
        "question_step_words": min(len(STEP_WORDS.findall(prompt)), 8),
        "question_sentences": min(prompt.count(".") + prompt.count("?"), 10),
        "question_asks_percent": float(bool(re.search(r"what percent|percentage", prompt, re.IGNORECASE))),
    }


MATH_MODEL_PATH = Path(__file__).resolve().parent / "data" / "math_judge.json"


@cache
def math_model() -> dict:
    """The learned math judge: a logistic regression over math_features, fitted by
    bench/judge_gsm8k.py --train on the training half of GSM8K's weak answers."""
    return json.loads(MATH_MODEL_PATH.read_text())


def math_probability(found: dict[str, float]) -> float:
    """P(the answer is right) by the learned math judge, from the answer's math_features."""
    model = math_model()
    z = model["intercept"] + sum(w * (found[name] - mean) / scale for name, w, mean, scale in
                                 zip(model["features"], model["weights"], model["mean"], model["scale"], strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def _math_score(prompt: str, text: str) -> tuple[float, str]:
    """Hard failures first (almost surely wrong); otherwise the learned judge's
    probability that the answer is right (bench/judge_gsm8k.py measures it on answers it
    was not fitted on)."""
    if text.count("<<") > text.count(">>"):
        return 0.05, "cut off mid-calculation"
    finals = FINAL.findall(text)
    if not re.search(NUMBER, text):
        return 0.1, "no number in a math answer"
    if not finals and not re.search(NUMBER + r"\W*\s*\w*\W*$", text[-60:]):
        return 0.3, "no final answer"
    found = math_features(prompt, text)  # the arithmetic is checked once, for both uses
    if found["wrong_calculations"]:
        return 0.15, f"{found['wrong_calculations']} calculation(s) do not check out"
    score = round(math_probability(found), 4)
    return score, f"math judge: P(right) {score:.2f}"
