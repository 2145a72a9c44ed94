"""The bounds on what npconv reads, each where it is parsed, and why it is there.

Every command reads text a person wrote -- flags, claims files, network files,
hand-written arithmetic -- and each of these bounds keeps a hostile or mistyped
input from taking unbounded time or memory (or from reaching a Python limit
as a traceback: the recursion limit, the 4,300-digit int-to-text limit).  A
value beyond a bound is refused with a :class:`~npconv.errors.ConvArgumentError`
that names the argument and the bound.  Each is far beyond anything written by
hand, so no honest input meets one.  Pure Python, no imports.
"""

#: Largest size a layer may have along any axis (batch, channels, height, width, filters, kernel),
#: and its largest stride, padding and dilation: 2**31 - 1.  The kernels index with 64-bit integers
#: (Numba's int64, NumPy's byte strides), and products of a step and a stride stay inside them; no
#: layer that fits in memory is larger; and every count of a layer -- a product of at most eight
#: such sizes -- stays below 10**80, so that it prints (far under Python's 4,300-digit limit).
MAX_SIZE = 2**31 - 1

#: Digits a number written in a claim (its value, a number in its arithmetic, a size of a shape)
#: or in a TOML file may have.  The largest count of any layer is under 10**80 (see MAX_SIZE), so a
#: longer number cannot be right; and reading a number is quadratic in its digits.
MAX_NUMBER_DIGITS = 100

#: Largest power of ten a claim's value may be written with (``2.76e6``): |exponent| <= 100.
#: ``1e999999999`` would otherwise become an integer of a billion digits.
MAX_EXPONENT = 100

#: Characters of a claim's hand-written arithmetic.  Hand-written working is a line or two; the
#: check sets it against the formula under each reading it searches, in time that grows with its
#: length, and prints it, so a longer one would only make the report unreadable and slow.
MAX_EXPRESSION_LENGTH = 2_000

#: Nesting depth of hand-written arithmetic: parentheses, floor(...) and ceil(...), and the
#: chains of '-' and '/' (each left-nested in the tree).  The parser, the evaluation, the rendering
#: and the comparison with the formula each recurse once per level, so this keeps them all far
#: from Python's recursion limit (1,000 frames).
MAX_EXPRESSION_DEPTH = 100

#: Nesting depth of arrays, inline tables and tables in a TOML file, and parts of a dotted key
#: (``a.b.c``).  Python's tomllib recurses once per array or inline table and reads a dotted key in
#: time quadratic in its parts, and the readers of its result recurse too.  A network file with
#: residual blocks nested MAX_LAYER_NESTING deep needs 2 levels per block and 4 more
#: (``padding = [[1, 1], [1, 1]]`` in the innermost layer table): 36.
MAX_TOML_NESTING = 64

#: Residual blocks nested inside residual blocks in a network file (``[[layers.main.main]]``).
#: Every walk of a network recurses per level; ResNets nest one.
MAX_LAYER_NESTING = 16

#: Bytes of a claims file or a network file.  Hand-written files are a few KiB (the built-in
#: networks, written out, are under 40 KiB); larger ones, and devices such as /dev/zero that never
#: end, are refused before they are read.
MAX_TEXT_FILE_BYTES = 2**20

#: Claims in one answer sheet (a file's [[claim]] tables, or --claim flags).  Each distinct claim runs
#: the reading search (about 0.1 s on these machines; identical claims are judged once), so the
#: largest sheet takes a couple of minutes at worst; answer sheets have tens of claims.
MAX_CLAIMS = 1_000

#: Characters of user input echoed in an error message; longer input is cut, with its length said.
ECHO_LENGTH = 120

__all__ = ["ECHO_LENGTH", "MAX_CLAIMS", "MAX_EXPONENT", "MAX_EXPRESSION_DEPTH", "MAX_EXPRESSION_LENGTH",
           "MAX_LAYER_NESTING", "MAX_NUMBER_DIGITS", "MAX_SIZE", "MAX_TEXT_FILE_BYTES", "MAX_TOML_NESTING"]
