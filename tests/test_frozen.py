"""orchestrator.frozen's @dataclass(frozen=True) behaves as the standard one: the same class body under both
decorators, compared call by call (construction and its errors, repr, equality, hashing, frozenness, the dataclasses
functions, pickling, pattern matching); classes it does not handle go to the standard decorator."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from orchestrator import frozen


def make(decorate, fld):
    @decorate
    class Rec:
        """A record with every kind of field the orchestrator's classes use."""

        name: str
        path: Path
        count: int = 0
        tags: dict = fld(default_factory=dict, compare=False)
        note: str = fld(default="", repr=False)
        items: tuple = fld(default=(), hash=False)
        cache: list = fld(default_factory=list, compare=False, repr=False)

        @property
        def double(self) -> int:
            return 2 * self.count

        @classmethod
        def named(cls, name: str) -> Rec:
            return cls(name, Path(name))

    return Rec


STD = make(dataclasses.dataclass(frozen=True), dataclasses.field)
FAST = make(frozen.dataclass(frozen=True), frozen.field)


@frozen.dataclass(frozen=True)
class Picklable:
    """Module level, so pickle finds it."""

    a: int
    b: dict = frozen.field(default_factory=dict)


def outcome(fn):
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - the comparison is the point
        return type(exc), str(exc)
    return value


CALLS = [
    ((), {}), (("a",), {}), (("a", Path("p")), {}), (("a", Path("p"), 3), {"tags": {"t": 1}}),
    ((), {"name": "a", "path": Path("p"), "note": "n", "items": (1, 2)}), (("a", Path("p")), {"name": "b"}),
    (("a", Path("p")), {"bogus": 1}), (tuple(range(9)), {}), (("a",), {"count": 1, "tags": {}}),
]


def test_the_fast_path_is_taken():
    assert "__frozen_fields__" in FAST.__dict__ and "__frozen_fields__" not in STD.__dict__


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_and_its_errors_match(args, kwargs):
    std, fast = outcome(lambda: STD(*args, **kwargs)), outcome(lambda: FAST(*args, **kwargs))
    if isinstance(std, tuple):
        assert fast == std
    else:
        assert repr(fast) == repr(std)
        assert dataclasses.asdict(fast) == dataclasses.asdict(std)
        assert dataclasses.astuple(fast) == dataclasses.astuple(std)


def test_repr_eq_hash_and_frozenness_match():
    for cls in (STD, FAST):
        a = cls("a", Path("p"), 2, {"x": 1}, "note", (1,), [3])
        b = cls("a", Path("p"), 2, {"y": 2}, "other", (2,), [])
        c = cls("a", Path("p"), 3)
        assert a.double == 4 and cls.named("z") == cls("z", Path("z"))
        assert (a == b, a == c, a != b, a.__eq__(object()), hash(a) == hash(cls("a", Path("p"), 2, note="note"))) == \
            (False, False, True, NotImplemented, True)
        assert cls("a", Path("p"), note="x", items=(1,)) == cls("a", Path("p"), note="x", items=(1,))
    s, f = STD("a", Path("p"), 2, {"x": 1}, "note", (1,), [3]), FAST("a", Path("p"), 2, {"x": 1}, "note", (1,), [3])
    assert repr(f) == repr(s).replace(STD.__qualname__, FAST.__qualname__)
    assert hash(f) == hash(s)
    assert f != s  # another class
    for target in (s, f):
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'name'"):
            target.name = "b"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
            target.other = 1  # type: ignore[attr-defined]
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'count'"):
            del target.count  # type: ignore[misc]
    assert FAST.__init__.__qualname__ == STD.__init__.__qualname__
    assert FAST.__match_args__ == STD.__match_args__
    assert FAST.__doc__ == STD.__doc__
    assert ("name" in FAST.__dict__, "tags" in FAST.__dict__, FAST.__dict__.get("note")) == \
        ("name" in STD.__dict__, "tags" in STD.__dict__, STD.__dict__.get("note"))


def test_a_subclass_that_is_no_dataclass_may_set_its_own_attributes():
    for cls in (STD, FAST):
        sub = type("Sub", (cls,), {})
        obj = sub("a", Path("p"))
        obj.extra = 1
        assert obj.extra == 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.name = "b"


def test_the_dataclasses_functions_see_the_same_fields():
    f = FAST("a", Path("p"), 2, {"x": 1})
    s = STD("a", Path("p"), 2, {"x": 1})
    assert dataclasses.is_dataclass(FAST) and dataclasses.is_dataclass(f)
    want = [(x.name, x.type, x.default, x.default_factory, x.repr, x.compare, x.hash) for x in dataclasses.fields(STD)]
    assert [(x.name, x.type, x.default, x.default_factory, x.repr, x.compare, x.hash) for x in dataclasses.fields(f)] == want
    assert FAST.__dataclass_params__.frozen and FAST.__dataclass_params__.eq
    assert repr(dataclasses.replace(f, count=5)) == repr(dataclasses.replace(s, count=5)).replace(STD.__qualname__,
                                                                                                  FAST.__qualname__)
    assert frozen.replace(f, count=5, tags={}) == dataclasses.replace(f, count=5, tags={})
    assert frozen.replace(s, count=5) == dataclasses.replace(s, count=5)  # a standard one: dataclasses' own
    assert frozen.field_names(FAST) == frozen.field_names(STD) == tuple(x[0] for x in want)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        frozen.replace(f, bogus=1)


def test_a_standard_dataclass_may_extend_one_made_here():
    @dataclasses.dataclass(frozen=True)
    class More(FAST):
        """Adds a field."""

        extra: int = 0

    m = More("a", Path("p"), extra=3)
    assert m.extra == 3 and [x.name for x in dataclasses.fields(m)][-1] == "extra"


def test_pickle_and_copy_round_trip():
    import copy

    p = Picklable(1, {"k": [1]})
    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(p) == p and copy.copy(p) == p
    match p:
        case Picklable(a, b):
            assert (a, b) == (1, {"k": [1]})


def _std_and_fast(body: str):
    """The same class source under both decorators: (standard outcome, fast outcome, whether fast went standard)."""
    made = []
    for deco, fld in (("dataclasses.dataclass", "dataclasses.field"), ("frozen.dataclass", "frozen.field")):
        src = body.replace("DECO", deco).replace("FIELD", fld)
        ns = {"dataclasses": dataclasses, "frozen": frozen, "ClassVar": object}
        made.append(outcome(lambda src=src, ns=ns: exec(
            "from __future__ import annotations\n" + src, ns) or ns["C"]))  # noqa: B023
    return made


@pytest.mark.parametrize("body", [
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int = 0\n    b: int\n",  # non-default after default
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: list = []\n",  # mutable default
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a = FIELD(default=1)\n",  # a field without annotation
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int = FIELD(default=1, default_factory=int)\n",
])
def test_what_the_standard_decorator_refuses_is_refused_alike(body):
    std, fast = _std_and_fast(body)
    assert isinstance(std, tuple) and fast == std


@pytest.mark.parametrize("body", [
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int\n    k: ClassVar[int] = 3\n",  # ClassVar
    "@DECO(frozen=True)\nclass C:\n    a: int\n",  # no docstring: dataclasses writes one
    "@DECO(frozen=True, order=True)\nclass C:\n    'doc'\n    a: int\n",
    "@DECO\nclass C:\n    'doc'\n    a: int = FIELD(default_factory=int)\n",  # not frozen
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int = FIELD(default=1, metadata={'m': 1})\n",
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int\n    def __post_init__(self):\n        pass\n",
    "@DECO(frozen=True)\nclass C:\n    'doc'\n    a: int\n    def __repr__(self):\n        return 'mine'\n",
])
def test_other_classes_go_to_the_standard_decorator(body):
    std, fast = _std_and_fast(body)
    assert "__frozen_fields__" not in fast.__dict__
    assert fast.__doc__ == std.__doc__
    assert [(f.name, f.default, f.metadata) for f in dataclasses.fields(fast)] == \
        [(f.name, f.default, f.metadata) for f in dataclasses.fields(std)]
    assert repr(fast(1)) == repr(std(1))
