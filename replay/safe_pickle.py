"""A restricted unpickler for PPG-DaLiA `S*.pkl`: a small pickle machine of its own that can only build
dicts, lists, tuples, strings, numbers and plain numeric numpy arrays.

Why not `pickle.Unpickler` with a `find_class` allow-list: that limits which callables a file names,
not what it hands them. numpy's `dtype.__setstate__` trusts its state (a crafted 54-byte pickle
segfaults it), the C unpickler allocates whatever byte count a file declares, and a deeply nested
tuple used as a dict key overflows the C stack when hashed. Here:
- every declared size is checked against the bytes left in the input before anything is allocated;
- a file may create at most `MAX_OBJECTS` objects and memoize at most `MAX_MEMO`;
- numpy sees only a dtype code from `DTYPE_CODES` with a byte order, and a buffer whose length is
  exactly shape × itemsize; dtype and array states are checked field by field first;
- dict keys are plain scalars (no tuples), so nothing recursive is ever hashed;
- every failure is an `UnsafePickleError` (the file asks for something outside the list) or a
  `MalformedPickleError` (it is not a well-formed pickle of admitted things); nothing else escapes.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import struct
from typing import Any, BinaryIO, Callable

import numpy as np

MAX_OBJECTS = 2_000_000  # a DaLiA file has a few hundred
MAX_MEMO = 1_000_000
MAX_INT_BYTES = 64  # LONG1/LONG4 integers; DaLiA has none wider than 8 bytes
MAX_NDIM = 8
MAX_DIM = 1 << 40
DTYPE_CODES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"})
_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})
_ADMITTED_TEXT = "only numpy arrays, dicts, lists, strings and numbers are allowed"


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (it may be malicious)."""


class MalformedPickleError(pickle.UnpicklingError):
    """Not a well-formed pickle of admitted things (corrupt, truncated, or crafted)."""


class _NdarrayClass:
    """Stands for `numpy.ndarray`, which a file may only name as `_reconstruct`'s first argument."""


_NDARRAY = _NdarrayClass()


class _Dtype:
    """A numeric dtype from the list; mutable because BUILD sets its byte order after memo refers to it."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype


class _PendingArray:
    """What `_reconstruct` returns: an array waiting for its BUILD; `memo_keys` are replaced once built."""

    __slots__ = ("memo_keys",)

    def __init__(self) -> None:
        self.memo_keys: list[int] = []


def _malformed(message: str) -> MalformedPickleError:
    return MalformedPickleError(message)


def _describe(value: Any) -> str:
    """A short, safe description of an untrusted value (no repr of nested or huge objects)."""
    if value is None or isinstance(value, (bool, float)) or (_plain_int(value) and abs(value) < 10**18):
        return repr(value)
    if isinstance(value, (str, bytes)):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return f"a value of type {type(value).__name__}"


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, int) or value not in (0, 1):
        raise _malformed(f"{what} must be a boolean, got {type(value).__name__}")
    return bool(value)


def _as_buffer(data: Any, what: str) -> bytes | bytearray:
    """Raw array bytes: bytes, or (Python 2 pickles read as latin-1) a str of code points < 256."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, str):
        try:
            return data.encode("latin-1")
        except UnicodeEncodeError:
            raise _malformed(f"{what} is text that is not latin-1 encoded bytes") from None
    if isinstance(data, list):
        raise UnsafePickleError("refused an object array: " + _ADMITTED_TEXT)
    raise _malformed(f"{what} must be bytes, got {type(data).__name__}")


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_NDIM:
        raise _malformed(f"array shape must be a tuple of at most {MAX_NDIM} sizes")
    if not all(_plain_int(d) and 0 <= d <= MAX_DIM for d in value):
        raise _malformed(f"array shape has a size that is negative, not an integer, or above {MAX_DIM}")
    return value


def _dtype_of(value: Any) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise _malformed(f"expected a numpy dtype, got {type(value).__name__}")
    return value.dtype


def _array_from(data: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    """numpy's part, reached only with a listed dtype and a buffer of exactly the declared size."""
    buffer = _as_buffer(data, "array data")
    count = math.prod(shape)
    if count * dtype.itemsize != len(buffer):
        raise _malformed(f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize:,} bytes, the pickle carries {len(buffer):,}")
    order = "F" if fortran else "C"
    native = dtype.newbyteorder("=")  # as numpy itself unpickles: in this machine's byte order
    if count == 0:
        return np.empty(shape, dtype=native, order=order)
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape, order=order).astype(native, order="K")


# --- the callables a file may name (GLOBAL / STACK_GLOBAL), each checking its own arguments ---


def _make_dtype(args: tuple) -> _Dtype:
    if not 1 <= len(args) <= 3:
        raise _malformed(f"numpy.dtype takes 1-3 arguments, got {len(args)}")
    code = args[0]
    if not isinstance(code, str) or code not in DTYPE_CODES:
        raise UnsafePickleError(f"refused numpy dtype {_describe(code)}: only bool, integer, float and complex numbers are allowed")
    for flag in args[1:]:
        _flag(flag, "a numpy.dtype flag")
    return _Dtype(np.dtype(code))  # align/copy are ignored: the dtype is always a fresh value here


def _reconstruct(args: tuple) -> _PendingArray:
    if len(args) != 3 or args[0] is not _NDARRAY:
        raise UnsafePickleError("refused _reconstruct of anything but numpy.ndarray")
    _shape(args[1])
    if not isinstance(args[2], (bytes, str)) or len(args[2]) > 8:
        raise _malformed("_reconstruct type code must be a short byte string")
    return _PendingArray()


def _scalar(args: tuple) -> Any:
    if len(args) != 2:
        raise UnsafePickleError("refused a numpy scalar without data (object scalars are not allowed)")
    dtype = _dtype_of(args[0])
    buffer = _as_buffer(args[1], "scalar data")
    if len(buffer) != dtype.itemsize:
        raise _malformed(f"numpy {dtype} scalar needs {dtype.itemsize} bytes, got {len(buffer)}")
    return np.frombuffer(buffer, dtype=dtype, count=1)[0]


def _frombuffer(args: tuple) -> np.ndarray:
    if len(args) != 4:
        raise _malformed(f"_frombuffer takes 4 arguments, got {len(args)}")
    buffer, dtype, shape, order = args
    if order not in ("C", "F"):
        raise _malformed(f"_frombuffer order must be 'C' or 'F', got {_describe(order)}")
    if not isinstance(buffer, (bytes, bytearray)):
        raise _malformed(f"_frombuffer needs in-band bytes, got {type(buffer).__name__}")
    return _array_from(buffer, _dtype_of(dtype), _shape(shape), order == "F")


def _codecs_encode(args: tuple) -> bytes:
    """Protocol 2 writes bytes as `_codecs.encode(text, 'latin1')`; nothing else is encoded."""
    if len(args) not in (2, 3) or not isinstance(args[0], str) or not isinstance(args[1], str) or args[1].lower() not in _LATIN1:
        raise UnsafePickleError("refused _codecs.encode other than (text, 'latin1')")
    if len(args) == 3 and args[2] != "strict":
        raise UnsafePickleError("refused _codecs.encode with an error handler")
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError:
        raise _malformed("_codecs.encode of text that is not latin-1") from None


def _empty_bytes(args: tuple) -> bytes:
    """Protocol 2 writes an empty byte string (an empty array's data) as a call to bytes()."""
    if args:
        raise UnsafePickleError("refused bytes(...) with arguments: only bytes() is allowed")
    return b""


_CALLABLES: dict[tuple[str, str], Callable[[tuple], Any]] = {
    ("numpy", "dtype"): _make_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _codecs_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


def _build_dtype(target: _Dtype, state: Any) -> None:
    """numpy writes (3, byteorder, None, None, None, -1, -1, 0) for every listed dtype; nothing else passes."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise _malformed("numpy dtype state must be an 8-tuple")
    version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
    if not _plain_int(version) or version not in (3, 4):
        raise _malformed(f"numpy dtype state version {_describe(version)} is not 3 or 4")
    if subarray is not None or names is not None or fields is not None or (len(state) == 9 and state[8] is not None):
        raise UnsafePickleError("refused a structured, sub-array or metadata dtype: " + _ADMITTED_TEXT)
    base = target.dtype
    for value in (elsize, alignment):
        if not _plain_int(value) or value not in (-1, base.itemsize, base.alignment):
            raise _malformed(f"numpy dtype state has size {_describe(value)} for {base}")
    if not _plain_int(flags) or flags != 0:
        raise _malformed(f"numpy dtype state flags {_describe(flags)} do not belong to a number type")
    if not isinstance(order, str) or order not in ("<", ">", "=", "|"):
        raise _malformed(f"numpy dtype byte order {_describe(order)} is not one of < > = |")
    if base.itemsize == 1:
        order = "|"
    elif order == "|":
        raise _malformed(f"numpy dtype {base} needs a byte order, got '|'")
    target.dtype = base.newbyteorder(order)


def _build_array(state: Any) -> np.ndarray:
    """ndarray state: (1, shape, dtype, is_fortran, data) or, from old numpy, the same without the version."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _malformed("numpy array state must be a 4- or 5-tuple")
    if len(state) == 5:
        if not _plain_int(state[0]) or state[0] != 1:
            raise _malformed(f"numpy array state version {_describe(state[0])} is not 1")
        state = state[1:]
    shape, dtype, fortran, data = state
    return _array_from(data, _dtype_of(dtype), _shape(shape), _flag(fortran, "array is_fortran"))


class _Input:
    """Reads from the stream, never more than it has left: a declared size beyond that is refused unread."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.left = size
        self.offset = 0

    def read(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise _malformed(f"declares {n:,} bytes at offset {self.offset:,} but only {self.left:,} remain")
        data = self.stream.read(n)
        if len(data) != n:
            raise _malformed(f"truncated at offset {self.offset + len(data):,}")
        self.left -= n
        self.offset += n
        return data

    def readinto_bytearray(self, n: int) -> bytearray:
        if n < 0 or n > self.left:
            raise _malformed(f"declares {n:,} bytes at offset {self.offset:,} but only {self.left:,} remain")
        buffer = bytearray(n)
        view, got = memoryview(buffer), 0
        while got < n:
            chunk = self.stream.readinto(view[got:])
            if not chunk:
                raise _malformed(f"truncated at offset {self.offset + got:,}")
            got += chunk
        self.left -= n
        self.offset += n
        return buffer

    def readline(self) -> bytes:
        line = self.stream.readline(self.left)
        self.left -= len(line)
        self.offset += len(line)
        if not line.endswith(b"\n"):
            raise _malformed(f"truncated at offset {self.offset:,}: a text argument has no end of line")
        return line[:-1]

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]


class _Machine:
    """The pickle virtual machine, cut down to the opcodes that build admitted values."""

    def __init__(self, inp: _Input) -> None:
        self.inp = inp
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.created = 0

    def push(self, value: Any) -> None:
        self.created += 1
        if self.created > MAX_OBJECTS:
            raise UnsafePickleError(f"refused: the pickle creates more than {MAX_OBJECTS:,} objects (a PPG-DaLiA file has a few hundred)")
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise _malformed("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _malformed("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _malformed("no MARK to pop to")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def remember(self, key: int) -> None:
        if key < 0:
            raise _malformed("negative memo key")
        if key not in self.memo and len(self.memo) >= MAX_MEMO:
            raise UnsafePickleError(f"refused: the pickle memoizes more than {MAX_MEMO:,} objects")
        value = self.top()
        self.memo[key] = value
        if isinstance(value, _PendingArray):
            value.memo_keys.append(key)

    def recall(self, key: int) -> None:
        try:
            self.push(self.memo[key])
        except KeyError:
            raise _malformed(f"memo key {key} was never stored") from None

    def set_item(self, target: Any, key: Any, value: Any) -> None:
        if not isinstance(target, dict):
            raise _malformed(f"SETITEM on {type(target).__name__}")
        if key is not None and not isinstance(key, (str, int, float, bytes)):
            raise UnsafePickleError(f"refused a dict key of type {type(key).__name__}: keys must be strings or numbers")
        target[key] = value

    def build(self) -> None:
        state = self.pop()
        target = self.top()
        if isinstance(target, _Dtype):
            _build_dtype(target, state)
        elif isinstance(target, _PendingArray):
            array = _build_array(state)
            self.stack[-1] = array
            for key in target.memo_keys:
                if self.memo.get(key) is target:
                    self.memo[key] = array
        else:
            raise UnsafePickleError(f"refused BUILD on {type(target).__name__}: only numpy arrays and dtypes carry state")

    def reduce(self) -> None:
        args = self.pop()
        func = self.pop()
        if not any(func is admitted for admitted in _CALLABLES.values()):
            raise UnsafePickleError(f"refused to call {type(func).__name__}: " + _ADMITTED_TEXT)
        if not isinstance(args, tuple):
            raise _malformed("REDUCE arguments must be a tuple")
        self.push(func(args))

    def find_class(self, module: Any, name: Any) -> None:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _malformed("STACK_GLOBAL needs two strings")
        if (module, name) == ("numpy", "ndarray"):
            self.push(_NDARRAY)
            return
        try:
            self.push(_CALLABLES[(module, name)])
        except KeyError:
            raise UnsafePickleError(f"refused to load '{module:.100}.{name:.100}': " + _ADMITTED_TEXT) from None

    def run(self) -> Any:
        handlers = _HANDLERS
        inp = self.inp
        while True:
            if inp.left == 0:
                raise _malformed("truncated: the pickle ends without STOP")
            opcode = inp.read(1)[0]
            handler = handlers.get(opcode)
            if handler is None:
                name = _OPCODE_NAMES.get(opcode)
                if name is not None:
                    raise UnsafePickleError(f"refused pickle opcode {name}: " + _ADMITTED_TEXT)
                raise _malformed(f"not a pickle: byte 0x{opcode:02x} at offset {inp.offset - 1:,} is no opcode")
            if handler(self) is _STOP:
                if len(self.stack) != 1 or self.marks:
                    raise _malformed("STOP with a stack that does not hold exactly one value")
                return self.stack[0]


_STOP = object()


def _text_int(line: bytes) -> int:
    if line.endswith(b"L"):
        line = line[:-1]
    return int(line)


def _quoted_string(line: bytes) -> str:
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise _malformed("the STRING argument must be quoted")
    return codecs.escape_decode(line[1:-1])[0].decode("latin-1")


def _int_line(m: _Machine) -> None:
    line = m.inp.readline()
    m.push(False if line == b"00" else True if line == b"01" else int(line))


def _long4(m: _Machine) -> None:
    n = m.inp.unpack("<i")
    if not 0 <= n <= MAX_INT_BYTES:
        raise _malformed(f"LONG4 of {n} bytes (at most {MAX_INT_BYTES})")
    m.push(int.from_bytes(m.inp.read(n), "little", signed=True))


def _counted(fmt: str, decode: Callable[[bytes], Any]) -> Callable[[_Machine], None]:
    def handler(m: _Machine) -> None:
        n = m.inp.unpack(fmt)
        m.push(decode(m.inp.read(n)))

    return handler


def _bytearray8(m: _Machine) -> None:
    m.push(m.inp.readinto_bytearray(m.inp.unpack("<Q")))


def _frame(m: _Machine) -> None:
    n = m.inp.unpack("<Q")
    if n > m.inp.left:
        raise _malformed(f"FRAME declares {n:,} bytes but only {m.inp.left:,} remain")


def _proto(m: _Machine) -> None:
    version = m.inp.read(1)[0]
    if version > pickle.HIGHEST_PROTOCOL:
        raise _malformed(f"pickle protocol {version} is newer than this Python reads")


def _dict_from_mark(m: _Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise _malformed("DICT with an odd number of items")
    d: dict = {}
    for i in range(0, len(items), 2):
        m.set_item(d, items[i], items[i + 1])
    m.push(d)


def _set_items(m: _Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise _malformed("SETITEMS with an odd number of items")
    target = m.top()
    for i in range(0, len(items), 2):
        m.set_item(target, items[i], items[i + 1])


def _set_item(m: _Machine) -> None:
    value = m.pop()
    key = m.pop()
    m.set_item(m.top(), key, value)


def _append(m: _Machine) -> None:
    value = m.pop()
    target = m.top()
    if not isinstance(target, list):
        raise _malformed(f"APPEND to {type(target).__name__}")
    target.append(value)


def _appends(m: _Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if not isinstance(target, list):
        raise _malformed(f"APPENDS to {type(target).__name__}")
    target.extend(items)


def _tuple_n(n: int) -> Callable[[_Machine], None]:
    def handler(m: _Machine) -> None:
        if len(m.stack) < n:
            raise _malformed("stack underflow")
        items = tuple(m.stack[len(m.stack) - n :])
        del m.stack[len(m.stack) - n :]
        m.push(items)

    return handler


def _mark(m: _Machine) -> None:
    m.created += 1
    if m.created > MAX_OBJECTS:
        raise UnsafePickleError(f"refused: the pickle creates more than {MAX_OBJECTS:,} objects")
    m.marks.append(m.stack)
    m.stack = []


def _pop(m: _Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _memoize(m: _Machine) -> None:
    m.remember(len(m.memo))


def _global(m: _Machine) -> None:
    module = m.inp.readline().decode("utf-8")
    name = m.inp.readline().decode("utf-8")
    m.find_class(module, name)


def _stack_global(m: _Machine) -> None:
    name = m.pop()
    module = m.pop()
    m.find_class(module, name)


def _stop(m: _Machine) -> object:
    return _STOP


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")  # Python 2 `str`, as DaLiA was written, read the way numpy documents


def _utf8(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


_P = pickle
_HANDLERS: dict[int, Callable[[_Machine], Any]] = {
    _P.PROTO[0]: _proto,
    _P.FRAME[0]: _frame,
    _P.STOP[0]: _stop,
    _P.MARK[0]: _mark,
    _P.POP[0]: _pop,
    _P.POP_MARK[0]: lambda m: m.pop_mark(),
    _P.DUP[0]: lambda m: m.push(m.top()),
    _P.NONE[0]: lambda m: m.push(None),
    _P.NEWTRUE[0]: lambda m: m.push(True),
    _P.NEWFALSE[0]: lambda m: m.push(False),
    _P.INT[0]: _int_line,
    _P.BININT[0]: lambda m: m.push(m.inp.unpack("<i")),
    _P.BININT1[0]: lambda m: m.push(m.inp.read(1)[0]),
    _P.BININT2[0]: lambda m: m.push(m.inp.unpack("<H")),
    _P.LONG[0]: lambda m: m.push(_text_int(m.inp.readline())),
    _P.LONG1[0]: lambda m: m.push(int.from_bytes(m.inp.read(m.inp.read(1)[0]), "little", signed=True)),
    _P.LONG4[0]: _long4,
    _P.FLOAT[0]: lambda m: m.push(float(m.inp.readline())),
    _P.BINFLOAT[0]: lambda m: m.push(m.inp.unpack(">d")),
    _P.STRING[0]: lambda m: m.push(_quoted_string(m.inp.readline())),
    _P.BINSTRING[0]: _counted("<i", _latin1),
    _P.SHORT_BINSTRING[0]: _counted("<B", _latin1),
    _P.UNICODE[0]: lambda m: m.push(str(m.inp.readline(), "raw-unicode-escape")),
    _P.BINUNICODE[0]: _counted("<I", _utf8),
    _P.SHORT_BINUNICODE[0]: _counted("<B", _utf8),
    _P.BINUNICODE8[0]: _counted("<Q", _utf8),
    _P.BINBYTES[0]: _counted("<I", bytes),
    _P.SHORT_BINBYTES[0]: _counted("<B", bytes),
    _P.BINBYTES8[0]: _counted("<Q", bytes),
    _P.BYTEARRAY8[0]: _bytearray8,
    _P.EMPTY_TUPLE[0]: lambda m: m.push(()),
    _P.TUPLE[0]: lambda m: m.push(tuple(m.pop_mark())),
    _P.TUPLE1[0]: _tuple_n(1),
    _P.TUPLE2[0]: _tuple_n(2),
    _P.TUPLE3[0]: _tuple_n(3),
    _P.EMPTY_LIST[0]: lambda m: m.push([]),
    _P.LIST[0]: lambda m: m.push(m.pop_mark()),
    _P.APPEND[0]: _append,
    _P.APPENDS[0]: _appends,
    _P.EMPTY_DICT[0]: lambda m: m.push({}),
    _P.DICT[0]: _dict_from_mark,
    _P.SETITEM[0]: _set_item,
    _P.SETITEMS[0]: _set_items,
    _P.GET[0]: lambda m: m.recall(int(m.inp.readline())),
    _P.BINGET[0]: lambda m: m.recall(m.inp.read(1)[0]),
    _P.LONG_BINGET[0]: lambda m: m.recall(m.inp.unpack("<I")),
    _P.PUT[0]: lambda m: m.remember(int(m.inp.readline())),
    _P.BINPUT[0]: lambda m: m.remember(m.inp.read(1)[0]),
    _P.LONG_BINPUT[0]: lambda m: m.remember(m.inp.unpack("<I")),
    _P.MEMOIZE[0]: _memoize,
    _P.GLOBAL[0]: _global,
    _P.STACK_GLOBAL[0]: _stack_global,
    _P.REDUCE[0]: lambda m: m.reduce(),
    _P.BUILD[0]: lambda m: m.build(),
}
# opcodes a pickle may use but this reader refuses: they build arbitrary objects or need outside help
_OPCODE_NAMES = {
    getattr(_P, name)[0]: name
    for name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
                 "NEXT_BUFFER", "READONLY_BUFFER", "EMPTY_SET", "ADDITEMS", "FROZENSET")
}


def safe_load(stream: BinaryIO, size: int) -> Any:
    """Unpickle at most `size` bytes of `stream`, admitting only what a PPG-DaLiA file holds.

    Python 2 strings are read as latin-1 (DaLiA was written by Python 2, numpy documents this).
    Raises only `UnsafePickleError` or `MalformedPickleError` (both `pickle.UnpicklingError`).
    """
    machine = _Machine(_Input(stream, size))
    try:
        return machine.run()
    except pickle.UnpicklingError:
        raise
    except MemoryError:
        raise MalformedPickleError("does not fit in memory") from None
    except Exception as e:  # anything else a hostile byte sequence provokes: still one clear refusal
        detail = str(e).splitlines()[0][:160] if str(e) else ""
        raise MalformedPickleError(f"corrupt at offset {machine.inp.offset:,} ({type(e).__name__}{': ' + detail if detail else ''})") from None


def safe_loads(data: bytes) -> Any:
    return safe_load(io.BytesIO(data), len(data))
