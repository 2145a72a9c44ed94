"""Fuzzing the command line: hostile flag values, claim expressions and TOML files.

Hypothesis draws what a hostile or careless user might type -- flag values of every shape and
length, arithmetic nested and long past the bounds, TOML documents with deep nesting, huge numbers,
stray bytes and wrong types -- and each run of ``npconv`` must end within a time budget, without a
traceback, with an exit status the command documents, and, on an error, one line
``npconv COMMAND: error: ...`` of readable length.

Examples per property: 5 in the default profile (the whole file takes a few seconds), and the
profile's own count in the others (``tests/conftest.py``: 500 in CI's, 10,000 in the soak).  ``measure`` and ``bench`` are
fuzzed up to the point where they would start running kernels (which the regression tests of
``test_hostile_input.py`` and the bad-input tables cover): their runners are replaced by a stub.
"""

from __future__ import annotations

import os
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from npconv import limits
from npconv.errors import EXIT_STATUSES

from cli_runner import run_captured, within

#: 5 examples per property in the default profile (``pytest``: a few seconds for the file); the profile's
#: own count in the others (CI: 500 per property).
EXAMPLES = 5 if os.environ.get("NPCONV_HYPOTHESIS_PROFILE", "default") == "default" else settings.default.max_examples

FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

#: The statuses each command may exit with (npconv --help lists them all).
STATUSES = {
    "explain": {0, 2},
    "check": {0, 1, 2, 3, 5},
    "model": {0, 2, 5},
    "measure": {0, 2, 4},
    "bench": {0, 2, 4, 5, 6},
}

#: Each run's time budget: a regression that hangs fails the example instead of stalling the suite.
BUDGET_SECONDS = 20


def assert_clean(command: str, argv: list[str]) -> int:
    """Run ``npconv command argv``: within the budget, a documented status, no traceback, one error line."""
    with within(BUDGET_SECONDS, f"npconv {command}"):
        code, out, err = run_captured(command, *argv)
    event(f"exit status {code}")  # shown by pytest --hypothesis-show-statistics
    assert code in STATUSES[command] and code in EXIT_STATUSES, (code, argv, err[:1000])
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2 and err.startswith("usage:"):  # argparse's own error: usage, then one line (the top
        # parser's own, "npconv: error: unrecognized arguments", for a stray option)
        assert err.strip().splitlines()[-1].startswith((f"npconv {command}: error: ", "npconv: error: ")), err[:1000]
    elif code not in (0, 1, 3):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"npconv {command}: error: "), err[:1000]
        assert len(lines[0]) < 1_200, lines[0][:300]
    return code


# ---------------------------------------------------------------------- strategies

_SEPARATORS = ["x", "X", "\u00d7", "*", ",", " x ", "  "]

#: Numbers as people write them, and as nobody does: signs, huge, long runs of digits.
numbers = st.one_of(
    st.integers(-3, 300).map(str),
    st.integers(0, 2**70).map(str),
    st.sampled_from(["2147483647", "2147483648", "9223372036854775807", "0", "-0", "+5", "1_000", "1e3"]),
    st.integers(90, 5_000).map(lambda n: "9" * n),
)

#: Shapes and pairs: numbers joined by separators, with stray spaces and garbage.
shape_texts = st.lists(numbers, min_size=0, max_size=6).flatmap(
    lambda parts: st.lists(st.sampled_from(_SEPARATORS), min_size=max(0, len(parts) - 1),
                           max_size=max(0, len(parts) - 1)).map(
        lambda seps: "".join(p + s for p, s in zip(parts, [*seps, ""], strict=False))))

#: Long and strange flag values: a flag's value is argv text, up to 100 KB here.
extreme_texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.printable, max_size=300),
    st.integers(1, 100_000).flatmap(lambda n: st.sampled_from([" " * n, "x" * n, "1" * n, "(" * n, "[" * n,
                                                                "1," * n, "é" * n])),
)

flag_values = st.one_of(shape_texts, numbers, extreme_texts, st.sampled_from(["same", "valid", "SAME", ""]))

LAYER_FLAGS = ["--input", "--kernel", "--filters", "--stride", "--padding", "--dilation", "--groups",
               "--depth-multiplier"]

#: A valid layer, small enough for every command: the base that one hostile value is put into.
valid_layers = st.fixed_dictionaries({
    "--input": st.one_of(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 8)),
                         st.tuples(st.integers(1, 2), st.integers(1, 8), st.integers(1, 30), st.integers(1, 30))
                         ).map(lambda sizes: "x".join(map(str, sizes))),
    "--kernel": st.integers(1, 5).map(str),
    "--filters": st.integers(1, 300).map(str),
}, optional={
    "--stride": st.integers(1, 3).map(str),
    "--padding": st.one_of(st.integers(0, 4).map(str), st.sampled_from(["same", "valid", "1x2", "0,1,0,1"])),
    "--dilation": st.integers(1, 3).map(str),
    "--depth-multiplier": st.integers(1, 3).map(str),
})

hostile_flags = st.lists(st.tuples(st.sampled_from(LAYER_FLAGS), flag_values), min_size=1, max_size=3)

#: Mostly a valid layer with one or more hostile values put in, sometimes hostile values alone.
layer_flags = st.one_of(
    valid_layers.map(lambda flags: [item for pair in flags.items() for item in pair]),
    st.tuples(valid_layers, hostile_flags).map(
        lambda both: [item for pair in {**both[0], **dict(both[1])}.items() for item in pair]),
    hostile_flags.map(lambda pairs: [item for pair in pairs for item in pair]),
)

_TOKENS = ["1", "2", "3", "5", "14", "256", "1,024", "0.5", ".5", "0", "9" * 100, "9" * 101,
           "+", "-", "x", "*", "/", "\u00d7", "\u00f7", "(", ")", "floor(", "ceil(", " ", "=", "e", "%"]


def _nest(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "x", "/", " x "]), inner).map("".join),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"floor({e})"),
        inner.map(lambda e: f"ceil({e})"),
    )


#: Arithmetic: well formed and nested, token soup, and the extremes of nesting and length.
expressions = st.one_of(
    st.deferred(lambda: well_formed),
    st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join),
    st.integers(limits.MAX_EXPRESSION_DEPTH - 2, 400).flatmap(lambda n: st.sampled_from(
        ["(" * n + "1" + ")" * n, "floor(" * n + "1" + ")" * n, "1" + "-1" * n, "1" + "/2" * n, "(" * n])),
    st.integers(limits.MAX_EXPRESSION_LENGTH // 3 - 5, 50_000).flatmap(lambda n: st.sampled_from(
        ["1+" * n + "1", "2x" * n + "1", "9" * 100 + ("x" + "9" * 100) * (n // 100)])),
)

QUANTITIES = ["standard.params", "standard.mults", "separable.mults", "depthwise.output", "ratio.mults",
              "pointwise.flops", "standard.output_size", "bogus.kind", "ratio.mobilenet"]

claim_values = st.one_of(numbers, shape_texts, extreme_texts,
                         st.sampled_from(["1e999999999", "2.76M", "4.4%", "0.0439", "1e-999", "nan", "inf"]))

plausible_values = st.one_of(st.integers(0, 3_000_000).map(str), st.sampled_from(["12x12x256", "10x10", "0.0439",
                                                                                  "1,102", "2.76M", "19456"]))

well_formed = st.recursive(st.sampled_from(["1", "3", "14", "256", "0", "2.5", "1,024"]), _nest, max_leaves=30)

plausible_claims = st.one_of(
    st.tuples(st.sampled_from(QUANTITIES[:-2]), plausible_values).map(lambda qv: f"{qv[0]}={qv[1]}"),
    st.tuples(st.sampled_from(QUANTITIES[:-2]), well_formed, plausible_values).map(lambda q: "=".join(q)),
)

hostile_claims = st.one_of(
    st.tuples(st.sampled_from(QUANTITIES), claim_values).map(lambda qv: f"{qv[0]}={qv[1]}"),
    st.tuples(st.sampled_from(QUANTITIES), expressions, st.one_of(plausible_values, claim_values)).map(
        lambda q: "=".join(q)),
    extreme_texts,
)

#: A few plausible claims (the reading search runs on them), and sometimes a hostile one among them.
inline_claims = st.tuples(st.lists(plausible_claims, min_size=1, max_size=3),
                          st.lists(hostile_claims, max_size=1)).map(lambda both: [*both[0], *both[1]])


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


#: TOML values: the right kinds and the wrong ones, huge ints, nested arrays past the bounds.
toml_values = st.one_of(
    st.integers(-5, 300).map(str),
    st.integers(2**31 - 2, 2**64).map(str),
    st.integers(90, 5_000).map(lambda n: "9" * n),
    st.sampled_from(["true", "1.5", "1e308", "nan", "inf", "[]", "[1, 2]", "[[1, 1], [1, 1]]", '"same"',
                     '["conv2d"]', "{a = 1}", '"14x14x3"', '"12x12x256"', "1979-05-27"]),
    st.text(max_size=30).map(_toml_string),
    st.integers(1, 6_000).flatmap(lambda n: st.sampled_from(["[" * n + "]" * n, "{a = " * n + "1" + "}" * n,
                                                             "[" * n])),
)

QUESTION_KEYS = ["input", "kernel", "filters", "stride", "padding", "dilation", "groups", "depth_multiplier",
                 "bias", "counting", "nonsense"]
CLAIM_KEYS = ["quantity", "value", "expression", "note", "other"]
LAYER_KEYS = ["kind", "name", "filters", "kernel", "stride", "padding", "dilation", "groups", "bias", "features",
              "main", "shortcut", "depth_multiplier"]
KINDS = ['"conv2d"', '"depthwise"', '"pointwise"', '"separable"', '"linear"', '"batchnorm"', '"maxpool"',
         '"avgpool"', '"global_avgpool"', '"flatten"', '"relu"', '"residual"', '["conv2d"]', "3"]


def _table(keys: list[str], values: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(st.tuples(st.sampled_from(keys), values), max_size=6, unique_by=lambda kv: kv[0]).map(
        lambda pairs: "".join(f"{key} = {value}\n" for key, value in pairs))


@st.composite
def claims_files(draw) -> str:
    """A claims file: a valid [question] and [[claim]] tables, into which some hostile keys, values or
    lines are put."""
    hostile = draw(st.integers(0, 3))  # how many hostile things go in: 0 is a valid file
    layer = draw(valid_layers)
    question = {"input": _toml_string(layer["--input"]), "kernel": layer["--kernel"],
                "filters": layer["--filters"]}
    for _ in range(min(hostile, draw(st.integers(0, 2)))):
        question[draw(st.sampled_from(QUESTION_KEYS))] = draw(toml_values)
    parts = [draw(st.sampled_from(["", 'title = "t"\n', "title = 3\n"])), "[question]\n",
             *(f"{key} = {value}\n" for key, value in question.items())]
    for _ in range(draw(st.integers(1, 3))):
        claim = {"quantity": _toml_string(draw(st.sampled_from(QUANTITIES[:-2]))),
                 "value": draw(plausible_values.map(_toml_string))}
        if draw(st.booleans()):
            claim["expression"] = _toml_string(draw(expressions))
        if hostile and draw(st.booleans()):
            claim[draw(st.sampled_from(CLAIM_KEYS))] = draw(st.one_of(toml_values, expressions.map(_toml_string)))
        parts += ["[[claim]]\n", *(f"{key} = {value}\n" for key, value in claim.items())]
    if hostile:
        parts.append(draw(_hostile_tail))
    return "".join(parts)


#: Layers that keep their input's shape (3 channels): what a residual block's main path may hold.
_SHAPE_KEEPING = ['kind = "conv2d"\nfilters = 3\nkernel = 3\npadding = 1\n', 'kind = "relu"\n',
                  'kind = "batchnorm"\n', 'kind = "depthwise"\nkernel = 3\npadding = "same"\n',
                  'kind = "separable"\nfilters = 3\nkernel = 3\npadding = [[1, 1], [1, 1]]\n']
_VALID_LAYERS = ['kind = "conv2d"\nfilters = 4\nkernel = 3\npadding = 1\n', 'kind = "relu"\n',
                 'kind = "batchnorm"\n', 'kind = "depthwise"\nkernel = 3\npadding = "same"\n',
                 'kind = "pointwise"\nfilters = 6\n', 'kind = "maxpool"\nkernel = 2\n',
                 'kind = "separable"\nfilters = 5\nkernel = 3\npadding = [[1, 1], [1, 1]]\n']


@st.composite
def network_files(draw) -> str:
    """A network file: valid layers (some nested in residual blocks, past the nesting bound too), into which
    some hostile kinds, keys, values or lines are put."""
    hostile = draw(st.integers(0, 3))
    parts = ['name = "n"\n', "input_shape = [1, 3, 16, 16]\n"]
    if hostile and draw(st.booleans()):
        parts[draw(st.integers(0, 1))] = draw(st.sampled_from(
            ["name = 1\n", "input_shape = [1, 3, 2147483648, 8]\n", "input_shape = 5\n", ""]))
    nesting = draw(st.integers(0, 2 * limits.MAX_LAYER_NESTING if hostile else 3))
    for level in range(nesting + 1):  # residual blocks, each the main path of the one before, then a layer
        parts.append(f"[[layers{'.main' * level}]]\n")
        parts.append("kind = 'residual'\n" if level < nesting else draw(st.sampled_from(
            _SHAPE_KEEPING if nesting else _VALID_LAYERS)))
    for _ in range(draw(st.integers(0, 3))):
        parts += ["[[layers]]\n", draw(st.sampled_from(_VALID_LAYERS))]
    for _ in range(hostile):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            parts.append(f"[[layers]]\nkind = {draw(st.sampled_from(KINDS))}\n")
        parts.append(draw(_table(LAYER_KEYS[1:], toml_values)) if choice < 2 else draw(_hostile_tail))
    return "".join(parts)


#: What may follow a file: nothing, a deeply dotted key, a long line, stray bytes of another encoding.
_hostile_tail = st.one_of(
    st.just(""),
    st.integers(1, 3_000).map(lambda n: "a" + ".b" * n + " = 1\n"),
    st.integers(1, 20_000).map(lambda n: 'description = """\n[' + " " * n + '\n"""\n'),
    st.sampled_from(["\x00\n", "[[\n", "x = \n", "= 1\n", "# caf\u00e9\n"]),
)


def _write(path, text: str, encoding: str) -> None:
    data = text.encode(encoding, errors="replace")
    path.write_bytes(b"\xef\xbb\xbf" + data if encoding == "utf-8-sig" else data)


# ---------------------------------------------------------------------- properties


@FUZZ
@given(flags=layer_flags, extra=st.sampled_from([[], ["--json"], ["--backward"], ["--backward", "--json"]]))
def test_explain_survives_any_layer_flags(flags, extra):
    assert_clean("explain", [*flags, *extra])


@FUZZ
@given(flags=layer_flags, claims=inline_claims, counting=st.sampled_from([[], ["--counting", "effective"]]))
def test_check_survives_any_inline_claims(flags, claims, counting):
    assert_clean("check", [*flags, *counting, *(item for claim in claims for item in ("--claim", claim))])


@FUZZ
@given(text=claims_files(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]), as_json=st.booleans())
def test_check_survives_any_claims_file(tmp_path_factory, text, encoding, as_json):
    path = tmp_path_factory.mktemp("claims") / "sheet.toml"
    _write(path, text, encoding)
    assert_clean("check", [str(path), *(["--json"] if as_json else [])])


@FUZZ
@given(text=network_files(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]),
       extra=st.sampled_from([[], ["--json"], ["--standard"]]))
def test_model_survives_any_network_file(tmp_path_factory, text, encoding, extra):
    path = tmp_path_factory.mktemp("network") / "net.toml"
    _write(path, text, encoding)
    assert_clean("model", [str(path), *extra])


@FUZZ
@given(name=st.one_of(extreme_texts, st.sampled_from(["", ".", "/dev/zero", "/", "mobilenet_v1", "x.toml"])),
       options=st.lists(st.tuples(st.sampled_from(["--width", "--resolution", "--classes"]),
                                  st.one_of(numbers, st.sampled_from(["nan", "inf", "1e308", "0.0001", "-1"]))),
                        max_size=2))
def test_model_survives_any_name_and_options(name, options):
    assert_clean("model", [name, *(item for option in options for item in option)])


class _Stubbed(Exception):
    """Raised by a stub where the command would start running kernels: every value was accepted."""


@pytest.fixture
def no_kernels(monkeypatch):
    """``measure`` and ``bench`` stop where their kernels would start, after every check they make first
    (the method plan, the memory check)."""
    from npconv import bench, measure
    from npconv.bench import report

    def stop_bench(layers=None, *, separable=None, dtype="float32", **options):
        report._ensure_workloads_fit(layers or {}, separable or {}, report.check_dtype(dtype),
                                     gemm=separable is None)
        raise _Stubbed

    def stop_measure(standard, separable, input_reading="", methods=None, named=False,
                     time_limit=measure.DEFAULT_TIME_LIMIT, dtype="float32", seed=0):
        measure.plan(standard, separable, methods or measure.kernels.available_methods(), named, time_limit)
        measure.ensure_operands_fit(standard, separable, dtype)
        raise _Stubbed

    monkeypatch.setattr(bench, "run_benchmark", stop_bench)
    monkeypatch.setattr(measure, "run", stop_measure)


MEASURE_FLAGS = st.lists(st.tuples(st.sampled_from(["--methods", "--time-limit"]),
                                   st.one_of(extreme_texts, st.sampled_from(["im2col", "direct,im2col", "nan",
                                                                             "0", "1e308", ",,"]))), max_size=2)
BENCH_FLAGS = st.lists(st.tuples(st.sampled_from(["--methods", "--layers", "--threads", "--repeats", "--dtype",
                                                  "--json", "--plot"]),
                                 st.one_of(extreme_texts, st.sampled_from(["seed", "resnet, large", "all", "1",
                                                                           "0", "/dev/full", "/proc/x", ".",
                                                                           "out.txt", "float16"]))), max_size=3)


@FUZZ
@given(flags=layer_flags, options=MEASURE_FLAGS)
def test_measure_survives_any_flags_up_to_its_kernels(no_kernels, flags, options):
    try:
        assert_clean("measure", [*flags, *(item for option in options for item in option)])
    except _Stubbed:
        pass


@FUZZ
@given(flags=layer_flags, options=BENCH_FLAGS)
def test_bench_survives_any_flags_up_to_its_kernels(no_kernels, tmp_path_factory, monkeypatch, flags, options):
    monkeypatch.chdir(tmp_path_factory.mktemp("bench"))
    try:
        assert_clean("bench", [*flags, *(item for option in options for item in option)])
    except _Stubbed:
        pass
