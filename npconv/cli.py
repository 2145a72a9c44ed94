"""The ``npconv`` command line.

``npconv explain`` (no arguments) explains the worked example of the course
problem: a 14x14x3 input, 5x5 kernels, 256 filters, stride 1, no padding.
Shapes are read the way people write them by hand (``14x14x3`` is H x W x C)
and the command says how it read them.

Importing this module and running ``npconv --help`` or ``npconv explain``
imports neither NumPy nor Numba.

Every error a user can cause is a :class:`~npconv.errors.ConvArgumentError`
raised where the bad value is read (naming the flag, file or key), and exits
with its class's status (:data:`npconv.errors.EXIT_STATUSES`, listed in
``npconv --help``), never with a traceback.

Size: every subcommand's parser (and only its parser: each handler is a few lines calling
the module that does the work), so that the flags of all commands can be read in one place.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from npconv import __version__
from npconv.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_STATUSES, ConvArgumentError, cut
from npconv.geometry import BIAS_CONVENTIONS, DEFAULT_BIAS_CONVENTION, ConvGeometry, SeparableGeometry
from npconv.question import QUESTION_KEYS, Question, flag_name, parse_input, parse_padding, parse_pair

__all__ = ["build_parser", "layers_from_arguments", "main", "parse_input", "parse_padding", "parse_pair",
           "question_from_arguments"]


def _add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    layer = parser.add_argument_group("layer (defaults: the worked example of the course problem)")
    layer.add_argument("--input", default="14x14x3", metavar="HxWxC",
                       help="input shape, HxWxC (batch 1) or NxCxHxW (default: 14x14x3)")
    layer.add_argument("--kernel", default="5", metavar="K",
                       help="kernel size, K or KHxKW (default: 5)")
    layer.add_argument("--filters", default="256", metavar="C_OUT",
                       help="output channels of the standard and separable layers (default: 256)")
    layer.add_argument("--stride", default="1", metavar="S", help="stride, S or SHxSW (default: 1)")
    layer.add_argument("--padding", default="0", metavar="P",
                       help="P, PHxPW, top,bottom,left,right, 'same' or 'valid' (default: 0); "
                            "'same' puts an odd extra pixel at the bottom/right")
    layer.add_argument("--dilation", default="1", metavar="D", help="dilation, D or DHxDW (default: 1)")
    layer.add_argument("--groups", default="1", metavar="G", help="groups of the standard layer (default: 1)")
    layer.add_argument("--depth-multiplier", default="1", metavar="M",
                       help="depthwise outputs per input channel (default: 1)")
    layer.add_argument("--bias", default=DEFAULT_BIAS_CONVENTION, choices=tuple(BIAS_CONVENTIONS),
                       help="bias convention: keras = bias on the standard layer and on the pointwise "
                            "part only; torch = bias on every layer; none (default: keras)")


def question_from_arguments(args: argparse.Namespace) -> tuple[Question, str]:
    """The question the layer flags describe, validated, and how --input was read."""
    return Question.from_text({key: getattr(args, key) for key in QUESTION_KEYS})


def layers_from_arguments(args: argparse.Namespace) -> tuple[ConvGeometry, SeparableGeometry, str]:
    """The standard and separable layers described by the layer flags, and how --input was read."""
    question, reading = question_from_arguments(args)
    return (*question.layers(), reading)


def _explain(args: argparse.Namespace) -> int:
    from npconv.explain import explain, render_text, to_json_dict

    standard, separable, reading = layers_from_arguments(args)
    report = explain(standard, separable, args.bias, reading, backward=args.backward,
                     methods=_fast_methods(args.method))
    if args.json:
        print(json.dumps(to_json_dict(report), indent=2))
    else:
        print(render_text(report))
    return 0


def _fast_methods(text: str | None, argument: str = "--method") -> tuple[str, ...]:
    """The fast algorithms named in ``text`` (comma-separated), for ``explain --method``."""
    from npconv.formulas import ALGORITHM_METHODS
    from npconv.kernels import choose_methods

    if text is None:
        return ()
    return choose_methods(text, tuple(ALGORITHM_METHODS), argument, "comma-separated fast methods among",
                          "the others count the layer's own dense and effective numbers, shown anyway")


def _layer_defaults() -> argparse.Namespace:
    """The layer flags' defaults (explain's): the course problem's worked example."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_layer_arguments(parser)
    return parser.parse_args([])


def _bench(args: argparse.Namespace) -> int:
    from npconv import bench, files

    # Everything a typo can break is checked before the (minutes-long) timing starts: the output files
    # (a regular file or a new one, in a folder that can be written to; the plot's format by its name)
    json_path = None if args.json is None else files.check_output(args.json, "--json")
    plot_path = None if args.plot is None else files.check_output(args.plot, "--plot")
    pyplot = bench.import_pyplot("--plot") if plot_path else None
    plot_format = bench.plot_format(plot_path, pyplot, "--plot") if plot_path else None
    methods = bench.select_methods(args.methods, "--methods")
    threads = None if args.threads is None else bench.check_threads(args.threads, "--threads")
    repeats = bench.DEFAULT_REPEATS if args.repeats is None else bench.check_repeats(args.repeats, "--repeats")
    named = bench.select_layers(args.layers, "--layers") if args.layers is not None else {}
    defaults = vars(_layer_defaults())
    given = {flag: getattr(args, flag) for flag in defaults if getattr(args, flag) is not None}
    ad_hoc = layers_from_arguments(argparse.Namespace(**{**defaults, **given})) if given else None
    if ad_hoc is not None:
        print(f"Ad-hoc layer: {ad_hoc[2]}")

    options = dict(methods=methods, threads=threads, dtype=args.dtype, repeats=repeats)
    progress = bench.ProgressLine()
    try:
        if args.separable:
            pairs = {name: bench.separable_counterpart(layer) for name, layer in named.items()}
            if ad_hoc is not None:
                pairs["ad-hoc"] = ad_hoc[:2]
            if not pairs:  # the course problem's example and the resnet-like layer
                pairs = {"problem example": layers_from_arguments(argparse.Namespace(**defaults))[:2],
                         "resnet 3x3": bench.separable_counterpart(bench.BENCHMARK_LAYERS["resnet 3x3"])}
            report = bench.run_benchmark(separable=pairs, progress=progress, **options)
        else:
            layers = dict(named)
            if ad_hoc is not None:
                layers["ad-hoc"] = ad_hoc[0]
            report = bench.run_benchmark(layers or None, progress=progress, **options)
    finally:
        progress.close()

    print(bench.render_text(report))
    # written exactly where asked, whole or not at all
    if json_path:
        files.write_atomically(json_path, lambda file: json.dump(report.to_json_dict(), file, indent=2), "--json")
        print(f"JSON written to {json_path}")
    if plot_path:
        files.write_atomically(plot_path, lambda file: bench.plot_report(report, file, pyplot, plot_format),
                               "--plot", binary=True)
        print(f"Plot written to {plot_path} ({plot_format.upper()})")
    return 0


_EPILOG = "exit status (every command):\n" + "\n".join(
    textwrap.fill(meaning, 100, initial_indent=f"  {status}  ", subsequent_indent="     ")
    for status, meaning in EXIT_STATUSES.items()) + """

Errors name the flag, or the file, line and key, and show at most a line of what was given.
Input is bounded where it is read (sizes, numbers' digits, expression length and nesting, file size
and nesting): see npconv.limits.
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose one-line errors stay one line: what was typed is echoed with its
    control characters escaped (a carriage return or an escape sequence in an argument would otherwise
    break the line or reach the terminal) and cut to a line's length."""

    def error(self, message: str) -> NoReturn:
        super().error(cut(_CONTROL.sub(lambda m: repr(m.group())[1:-1], message), 400))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npconv",
        description="Convolution from scratch, with kernels that count their own arithmetic.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"npconv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain = commands.add_parser(
        "explain",
        help="standard vs depthwise-separable layer: shapes, parameters, mults, adds, working shown",
        description="Explain a standard and a depthwise-separable layer side by side: output "
                    "shape, parameters, multiplications, additions, FLOPs and their ratios, each "
                    "with its working shown. With no flags: the course problem's worked example.",
    )
    _add_layer_arguments(explain)
    explain.add_argument("--backward", action="store_true",
                         help="also count one training step: the forward pass, the input, weight and bias "
                              "gradients, and why a step costs about three forward passes")
    explain.add_argument("--method", metavar="NAMES",
                         help="also count what a fast algorithm executes, stage by stage with the working: "
                              "winograd (its default tile), winograd2, winograd4, fft (comma-separated)")
    explain.add_argument("--json", action="store_true", help="print machine-readable JSON")
    explain.set_defaults(handler=_explain)
    _add_check_parser(commands)
    _add_measure_parser(commands)
    _add_bench_parser(commands)
    _add_animate_parser(commands)
    _add_model_parser(commands)
    _add_train_parser(commands)
    return parser


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    from npconv.layerset import BENCHMARK_LAYERS  # pure Python, like this module

    bench = commands.add_parser(
        "bench",
        help="time every npconv method against PyTorch's conv2d and NumPy's GEMM peak",
        description="Time every npconv method (and PyTorch's conv2d, when installed) on the benchmark "
                    "layer set, beside NumPy's GEMM as the machine's practical peak, all in this process "
                    "with one thread count. Reports median time, spread, GFLOP/s from the counts the "
                    "kernels measured, fraction of the GEMM peak, counting-call overhead and time over "
                    "PyTorch's. Layers: --layers names from the set, and/or one ad-hoc layer given with "
                    "explain's layer flags (any layer flag adds it; flags not given keep explain's "
                    "defaults), e.g. --input 8x64x56x56 --kernel 3 --filters 64 --padding 1.",
    )
    bench.add_argument("--layers", metavar="NAMES",
                       help=f"comma-separated layers of the set: {', '.join(BENCHMARK_LAYERS)} (case and "
                            "spaces ignored, a unique prefix such as 'resnet' will do; 'all'); default: "
                            "the whole set, or only the ad-hoc layer when layer flags are given")
    bench.add_argument("--methods", metavar="NAMES",
                       help="comma-separated npconv methods (default: every available one); PyTorch is "
                            "always timed when installed")
    bench.add_argument("--threads", type=int, metavar="N",
                       help="threads for Numba, BLAS and PyTorch alike (default: all cores)")
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="dtype of the layers and of the GEMM (default: float32)")
    bench.add_argument("--repeats", type=int, metavar="N",
                       help="timed samples per contestant after warm-up; the median is reported (default: 9)")
    bench.add_argument("--json", metavar="FILE", help="also write every number to FILE as JSON")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="also draw a bar chart of time over PyTorch's per layer and method, in the format "
                            "its suffix names (.png, .pdf, .svg, ...; none: PNG, under that name) "
                            "(needs matplotlib: pip install 'npconv[plot]')")
    bench.add_argument("--separable", action="store_true",
                       help="does fewer multiplications mean faster? Time standard layers against their "
                            "depthwise-separable counterparts (default: the course problem's example and "
                            "resnet 3x3) and print the measured mult ratio beside the time ratio")
    _add_layer_arguments(bench)
    # None marks a layer flag that was not given: any given one makes the ad-hoc layer.
    bench.set_defaults(handler=_bench, **dict.fromkeys(vars(_layer_defaults()), None))


def _animate(args: argparse.Namespace) -> int:
    from npconv import animate

    standard, separable, reading = layers_from_arguments(args)
    out = args.out if args.out is not None else f"npconv_{args.scene}.gif"
    names = {"layer": "--input", "scene": "--scene", "frames": "--frames", "fps": "--fps", "out": "--out"}
    result = animate.animate(separable if args.scene in ("depthwise", "pointwise") else standard, out,
                             scene=args.scene, frames=args.frames, fps=args.fps, argument_names=names)
    print(reading)
    print(result.summary())
    return 0


def _add_animate_parser(commands: argparse._SubParsersAction) -> None:
    from npconv.animate import DEFAULT_FPS, DEFAULT_MAX_FRAMES, MAX_FPS, MAX_FRAMES, SCENES  # pure Python

    animate = commands.add_parser(
        "animate",
        help="an animated GIF of the layer: the window sliding, the output filling in (needs matplotlib)",
        description="Draw the layer given by the layer flags as an animated GIF (or MP4, where ffmpeg is "
                    "installed): one frame per output position, the window's taps on the padded input "
                    "(crossed where they land on padding), with stride and dilation, and the output filling "
                    "in. Scenes: " + "; ".join(f"{name}: {what}" for name, what in SCENES.items()) + ". "
                    "A layer with more output positions than --frames shows evenly spaced ones and says so. "
                    "Needs matplotlib: pip install 'npconv[plot]'.",
    )
    animate.add_argument("--scene", default="standard", choices=tuple(SCENES),
                         help="what to draw (default: standard; depthwise and pointwise draw the two parts of "
                              "the separable layer, transposed the transposed convolution of the standard one)")
    animate.add_argument("--frames", type=int, default=DEFAULT_MAX_FRAMES, metavar="N",
                         help=f"at most N frames, 1 to {MAX_FRAMES} (default: {DEFAULT_MAX_FRAMES})")
    animate.add_argument("--fps", type=float, default=DEFAULT_FPS, metavar="F",
                         help=f"frames per second, above 0 and at most {MAX_FPS:g} (default: {DEFAULT_FPS:g})")
    animate.add_argument("--out", metavar="FILE.gif",
                         help="where to write it: a .gif, or an .mp4 with ffmpeg installed (default: "
                              "npconv_SCENE.gif in the current folder)")
    _add_layer_arguments(animate)
    animate.set_defaults(handler=_animate)


def _check(args: argparse.Namespace) -> int:
    from npconv import claims

    if args.file is not None:
        if args.claim:
            raise ConvArgumentError("--claim", "claims in FILE or on the command line, not both",
                                    f"FILE {args.file!r} and --claim {args.claim[0]!r}")
        defaults = vars(build_parser().parse_args(["check"]))
        for key in (*QUESTION_KEYS, "counting"):
            if getattr(args, key) != defaults[key]:
                raise ConvArgumentError(flag_name(key), "no layer flag with FILE (its [question] table "
                                        "describes the layer)", repr(getattr(args, key)))
        sheet = claims.load_sheet(args.file)
        if args.exercise is not None:
            from npconv.claims.exercises import answered_against

            sheet = answered_against(claims.load_sheet(args.exercise, "--exercise"), sheet)
        if args.answers:
            return _print_model_answers(args, sheet)
    elif args.exercise is not None or args.answers:
        flag = "--answers" if args.answers else "--exercise"
        raise ConvArgumentError("FILE", f"a claims file with {flag} (--exercise SHEET FILE grades FILE's answers "
                                "to SHEET; --answers SHEET prints SHEET's model answers)", "none")
    elif args.claim:
        question, reading = question_from_arguments(args)
        sheet = claims.sheet_from_strings(question, args.claim, args.counting, reading)
    else:
        raise ConvArgumentError("FILE", "a claims file, or one or more --claim QUANTITY=VALUE", "neither")
    report = claims.check(sheet, _check_rules(args, sheet.rules))
    _print_report(args, report, claims)
    return report.exit_status


def _print_model_answers(args: argparse.Namespace, sheet) -> int:
    """``check --answers``: the sheet's model answers, a claims file npconv check grades 100% (or JSON)."""
    from npconv import claims
    from npconv.claims.exercises import model_answers, sheet_to_toml

    model = model_answers(sheet)
    rights = {c.number: claims.answer(c.quantity, claims.Setting(sheet.question, sheet.counting))
              for c in sheet.claims}
    if args.json:
        print(json.dumps({"source": sheet.source, "title": sheet.title, "answers": [
            {"number": c.number, "id": c.id, "quantity": c.quantity, "ask": c.ask, "value": rights[c.number].text,
             "expression": c.expression, "working": rights[c.number].working} for c in model.claims]}, indent=2))
        return 0
    header = (f"Model answers: {sheet.title or sheet.source}\n"
              f"written by `npconv check --answers {sheet.source}` (npconv {__version__}): every value and its\n"
              "working is npconv's own; `npconv check` on this file grades it 100%.")
    print(sheet_to_toml(model, header, {n: a.working for n, a in rights.items()}), end="")
    return 0


def _check_rules(args: argparse.Namespace, rules):
    """The sheet's rules, with those that flags set in their place."""
    import dataclasses

    from npconv.claims import misconceptions
    from npconv.claims import rules as grading

    flags = {"tolerance": args.tolerance, "readings": args.readings,
             "working": "required" if args.require_working else None}
    flags = {key: value for key, value in flags.items() if value is not None}
    if not flags:
        return rules
    names = {"tolerance": "--tolerance", "readings": "--readings", "working": "--require-working"}
    named = grading.rules_from(flags, misconceptions.BY_NAME, names.__getitem__)
    fields = {"tolerance": "tolerance", "readings": "readings", "working": "working_required"}
    return dataclasses.replace(rules, **{fields[key]: getattr(named, fields[key]) for key in flags})


def _print_report(args: argparse.Namespace, report: object, renderer: object) -> None:
    """``renderer.to_json_dict(report)`` as JSON with --json, else ``renderer.render_text(report)``."""
    print(json.dumps(renderer.to_json_dict(report), indent=2) if args.json else renderer.render_text(report))


_CHECK_EPILOG = """\
quantities: {quantities}.

values: 19454, "1,102", "2.76M" or 0.0439 (a decimal holds to the digits written); shapes "12x12x254".
expressions: + - * / x, parentheses, floor(...), ceil(...), e.g. "(5*5*3+1)*254" or "15 + 1024".

claims file (TOML), see examples/answer_sheet.toml:
  [question]
  input = "14x14x3"      # and kernel, filters; optional: stride, padding, dilation, groups,
  kernel = 5             # depth_multiplier, bias (keras|torch|none), counting (dense|effective)
  filters = 256
  [[claim]]
  quantity = "standard.params"
  value = 19454
  expression = "(5 x 5 x 3 + 1) x 254"   # optional, as is note = "..."

exercise sheets (examples/exercises/): each [[claim]] is a question with an id, a quantity and
its wording (ask), and no value; npconv knows the answers. A student writes value = ... (and,
optionally, expression = "...", the working) under each question of a copy, then runs
npconv check COPY (or, with the teacher's sheet, npconv check --exercise SHEET COPY). A question
without a value is "not answered": 0 credit, its right value not shown. The teacher's model
answers, with working: npconv check --answers SHEET.

verdicts: holds; holds if (only under a reading of the question the rules allow, named: another
padding, the bias convention); slip (a number copied wrong, arithmetic that does not give the value
written, a value rounded, working missing where required); wrong (a classic misconception, named,
or no explanation); not answered (a question of an exercise sheet without a value). The right
value, with its working, is shown for every answered claim. Written working is
evaluated first and compared with the formula by algebra: a reading the working contradicts is
never the verdict. Score: 1 per claim that holds, reading_credit (1) under an allowed reading,
slip_credit (0.5) per slip, 0 when wrong.

rules (a [rules] table in FILE, or the flags): tolerance = "exact" | "digits" | "1%";
readings = ["padding", "bias"] (add "counting" or a misconception's name to accept it);
working = "optional" | "required"; slip_credit = 0.5; reading_credit = 1.

exit status: 0 every claim holds; 1 some claim is wrong or has a slip; 3 none is wrong or slipped
but some hold only under a reading or are not answered; 2 a bad flag or claims file (the error names FILE:LINE and the key);
5 a claims file that cannot be read (see npconv --help for every command's statuses).
"""


def _add_check_parser(commands: argparse._SubParsersAction) -> None:
    from npconv.claims import QUANTITY_HELP  # pure Python, like this module

    check = commands.add_parser(
        "check",
        help="grade hand-computed answers (a TOML claims file or --claim): verdicts, slips, mistakes, a score",
        description="Check claims about a standard and a depthwise-separable layer -- output shapes, "
                    "parameters, mults, adds, FLOPs, ratios -- each with the value written and, optionally, "
                    "the arithmetic written. Each gets a verdict -- holds, holds if (under a reading the "
                    "rules allow), slip or wrong, each named -- beside the right value and its working, and "
                    "the sheet a score. Claims come "
                    "from FILE, or from --claim with the layer flags (defaults: the course problem).",
        epilog=_CHECK_EPILOG.format(quantities=QUANTITY_HELP),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="a TOML claims file")
    check.add_argument("--exercise", metavar="SHEET",
                       help="grade FILE, a student's copy of the exercise sheet SHEET with answers written in, "
                            "against SHEET: its questions (matched by id), question and rules are SHEET's")
    check.add_argument("--answers", action="store_true",
                       help="print FILE's model answers with their working, as a claims file that grades 100%% "
                            "(for the teacher of an exercise sheet); nothing is graded")
    check.add_argument("--claim", action="append", metavar="QUANTITY=VALUE",
                       help="a claim QUANTITY=VALUE or QUANTITY=EXPRESSION=VALUE, e.g. separable.params=1102 "
                            "or 'separable.params=15+1024=1102' (repeatable)")
    check.add_argument("--counting", choices=("dense", "effective"), default="dense",
                       help="the counting convention the question means (default: dense, the textbook's)")
    check.add_argument("--tolerance", metavar="T",
                       help="exact (default), digits (to the digits written) or a relative tolerance such as 1%%")
    check.add_argument("--readings", metavar="NAMES",
                       help="readings accepted as right, comma-separated (default: padding,bias; 'none' for "
                            "none; also counting, or a misconception's name)")
    check.add_argument("--require-working", action="store_true",
                       help="a number given without its arithmetic is a slip")
    _add_layer_arguments(check)
    check.add_argument("--json", action="store_true", help="print machine-readable JSON")
    check.set_defaults(handler=_check)


def _measure(args: argparse.Namespace) -> int:
    from npconv import measure

    standard, separable, reading = layers_from_arguments(args)
    methods, named = measure.choose_methods(args.methods, "--methods")
    time_limit = measure.check_time_limit(args.time_limit, "--time-limit")
    report = measure.run(standard, separable, reading, methods, named, time_limit)
    _print_report(args, report, measure)
    return report.exit_status


def _add_measure_parser(commands: argparse._SubParsersAction) -> None:
    from npconv import kernels
    from npconv.measure import DEFAULT_TIME_LIMIT

    slow = ", ".join(f"{m} ~{kernels.declaration(m).mults_per_second:,} mults/s"
                     for m in kernels.interpreted_methods())
    measure = commands.add_parser(
        "measure",
        help="run the layer through every method and compare the counts it measured with the formulas",
        description="Run the standard and the depthwise-separable layer on random data through every "
                    "available method, in each counting convention the method executes, and print the "
                    "mults and adds each one counted beside the closed-form dense and effective counts, "
                    "with a check and the time. Exit status 1 if any measured count disagrees with its "
                    "formula.",
    )
    _add_layer_arguments(measure)
    measure.add_argument("--methods", metavar="NAMES",
                         help="comma-separated methods (default: every available one)")
    measure.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, metavar="SECONDS",
                         help=f"skip an interpreted method ({slow}) expected to take longer on this layer, "
                              f"or refuse it when named in --methods (default: {DEFAULT_TIME_LIMIT:g})")
    measure.add_argument("--json", action="store_true", help="print machine-readable JSON")
    measure.set_defaults(handler=_measure)


def _model(args: argparse.Namespace) -> int:
    from npconv import model  # pure Python: NumPy only for --measure

    return model.run(args)


def _add_model_parser(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model",
        help="a whole network: per-layer shapes, parameters and mults, totals; measured, or beside PyTorch",
        description="Count a whole network layer by layer: output shape, parameters, multiplications "
                    "(dense and effective) and their share of the total, with the conventions stated. "
                    "NAME is a built-in network (--list), FILE a TOML description (see npconv.network_toml); "
                    "or --torch FILE.py:FACTORY, a PyTorch model of your own, traced.",
        epilog="exit status: 0; 1 a measurement (--measure) or a comparison (--compare) disagrees with the "
               "formulas; 3 nothing disagrees, but the network has operations npconv does not count (listed "
               "by name with their calls, in no total); 2 a bad flag, file or model.",
    )
    model.add_argument("network", nargs="?", metavar="NAME|FILE",
                       help="built-in network name (mobilenet_v1, vgg16, resnet18, small_separable, "
                            "small_standard) or a .toml file")
    torch_model = model.add_argument_group("a PyTorch model of your own (needs PyTorch: pip install 'npconv[compare]')")
    torch_model.add_argument("--torch", metavar="FILE.py:FACTORY",
                             help="import FILE.py (your code, run as Python runs it), call FACTORY() -- a "
                                  "function or class returning a torch.nn.Module, or a module itself -- and "
                                  "count the model, traced with torch.fx (forward hooks where fx cannot trace "
                                  "it); --standard, --measure, --compare torch and --json work on it")
    torch_model.add_argument("--input-shape", metavar="NxCxHxW",
                             help="the input it is traced on, NxCxHxW or HxWxC (default "
                                  "1x3x224x224); small ones keep --measure quick")
    model.add_argument("--list", action="store_true", help="list the built-in networks and their options")
    model.add_argument("--json", action="store_true", help="print machine-readable JSON")
    options = model.add_argument_group("options of the built-in networks")
    options.add_argument("--width", type=float, metavar="ALPHA",
                         help="MobileNet's width multiplier alpha (default 1.0)")
    options.add_argument("--resolution", type=int, metavar="R", help="input R x R (default 224)")
    options.add_argument("--classes", type=int, metavar="K", help="outputs of the last linear layer")
    model.add_argument("--standard", action="store_true",
                       help="rebuild a separable network with standard convolutions of the same shapes, "
                            "and show what separability saved")
    model.add_argument("--measure", action="store_true",
                       help="run every conv and linear layer on random data with counting on and set the "
                            "measured totals beside the formulas (exit 1 on a mismatch)")
    model.add_argument("--method", metavar="M",
                       help="with --measure: the algorithm (default: the first available of direct, im2col)")
    model.add_argument("--convention", choices=("dense", "effective"),
                       help="with --measure: counting convention (default: the method's own)")
    model.add_argument("--workspace-limit", type=int, metavar="MIB",
                       help="with --measure: scratch memory a kernel may take per layer, in MiB "
                            "(default: npconv's, 256)")
    model.add_argument("--compare", choices=("torch",),
                       help="build the same network in PyTorch and set its parameter count and "
                            "FlopCounterMode figure beside npconv's, explaining the difference (exit 1 if "
                            "they disagree)")
    model.set_defaults(handler=_model)


def _train(args: argparse.Namespace) -> int:
    from npconv.train.command import run  # NumPy and the training stack, only when training

    return run(args)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train the standard and the separable network (digits by default), counted and timed side by side",
        description="Train the course problem's pair -- small_standard and small_separable, adapted to the "
                    "data's channels and classes -- on scikit-learn's 8x8 digits (a fixed stratified "
                    "80/20 split) or on an .npz file, with every convolution running through npconv's "
                    "kernels. Prints side by side: parameters, forward and training-step mults per image "
                    "(formula, and what the kernels counted), time per epoch, train loss and test accuracy "
                    "per epoch. Needs the train extra: pip install 'npconv[train]'.",
        epilog="exit status: 0 trained; 2 a bad flag or data file, or a loss that stopped being finite (the "
               "last good weights are kept and saved with --save); 130 interrupted with Ctrl-C (what was "
               "trained so far is reported and saved with --save).",
    )
    train.add_argument("--net", action="append", metavar="NAME|FILE",
                       help="a built-in network or a TOML file; repeat or comma-separate for several "
                            "(default: small_standard,small_separable)")
    train.add_argument("--epochs", metavar="N", help="passes over the training set (default: 40)")
    train.add_argument("--batch-size", metavar="N", help="images per step (default: 16)")
    train.add_argument("--lr", metavar="LR", help="learning rate (default: 0.01)")
    train.add_argument("--optimizer", metavar="NAME", help="sgd (with momentum) or adam (default: adam)")
    train.add_argument("--momentum", metavar="M", help="SGD's momentum (default: 0.9)")
    train.add_argument("--schedule", metavar="NAME",
                       help="learning rate per epoch: cosine (annealed to 0 over the epochs, as PyTorch's "
                            "CosineAnnealingLR) or constant (default: cosine)")
    train.add_argument("--method", metavar="NAME",
                       help="the kernels every conv and linear layer runs through (default: im2col, the "
                            "fastest here)")
    train.add_argument("--seed", metavar="N", help="initial weights and batch order (default: 0)")
    train.add_argument("--data", metavar="FILE.npz",
                       help="arrays x_train, y_train, x_test, y_test (as the MNIST npz files); images NHW, "
                            "NHWC or NCHW (default: scikit-learn's digits)")
    train.add_argument("--save", metavar="FILE.npz", help="write the trained weights here (atomically)")
    train.add_argument("--load", metavar="FILE.npz", help="start from weights written by --save")
    train.add_argument("--plot", metavar="FILE.png", help="draw the learning curves (needs matplotlib)")
    train.add_argument("--json", action="store_true", help="print machine-readable JSON")
    train.set_defaults(handler=_train)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe is found here, not at exit where Python can only complain
        return status
    except ConvArgumentError as error:
        # A bad flag, file or value: say which and why, as argparse does, without a traceback, and exit
        # with the status of its kind (2 a bad value, 4 too large for memory, 5 a file, 6 a package).
        print(f"npconv {args.command}: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:  # train reports its own interruption; elsewhere there is nothing to keep
        print(f"npconv {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whatever is still buffered goes nowhere: the reader is gone, and Python would otherwise
        # report the failed flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
