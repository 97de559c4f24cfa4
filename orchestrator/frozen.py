"""`@dataclass(frozen=True)` for the classes a warm run makes, without the standard decorator's start-up cost.

Importing dataclasses imports inspect (ast, dis, tokenize: ~10 ms here), and the decorator compiles about six
methods per class (~1 ms a class); a fully cached `run all` made 14 such classes in a run of well under 100 ms.
Here `__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__` and `__delattr__` are closures over the field
list, with the semantics of the standard ones (Python 3.11's), and nothing is compiled.

The classes stay dataclasses to everything else: `__dataclass_fields__` and `__dataclass_params__` are made on
first use, by the standard decorator itself on a twin class with the same annotations and defaults, so
`dataclasses.replace`, `asdict`, `fields` and `is_dataclass` see real Field objects (and only then is dataclasses
imported). A class this module would not treat exactly as the standard decorator does goes to the standard
decorator instead: any option but frozen=True, a ClassVar, InitVar or KW_ONLY annotation, annotations that are not
strings, a dataclass base, a metaclass, its own __init__/__repr__/__eq__/__hash__/__setattr__/__delattr__/
__post_init__/__slots__, no docstring, a field option other than default, default_factory, repr, compare and hash,
an unhashable default, a field without a default after one with. mypy sees the standard functions (TYPE_CHECKING).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported on the warm path
if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import replace as replace
else:
    import reprlib

    _MISSING = object()
    _FAST_OPTIONS = {"default", "default_factory", "repr", "compare", "hash"}
    _OWN_METHODS = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__post_init__",
                    "__slots__", "__match_args__", "__dataclass_fields__", "__dataclass_params__")
    _SPECIAL = ("ClassVar", "InitVar", "KW_ONLY")
    FIELDS = "__frozen_fields__"  # on each class made here: its field names, in order

    class _Field:
        """What `field(...)` said in a class body, read by the decorator (or handed to dataclasses.field)."""

        __slots__ = ("options",)

        def __init__(self, options: dict) -> None:
            self.options = options

    def field(**options):
        """dataclasses.field: the same options, for classes decorated by `dataclass` here."""
        return _Field(options)

    def dataclass(cls=None, /, **options):
        """dataclasses.dataclass: frozen=True classes are made here, everything else by the standard decorator."""
        if cls is None:
            return lambda c: dataclass(c, **options)
        plan = _plan(cls) if options == {"frozen": True} else None
        if plan is None:
            return _standard(cls, options)
        _make(cls, plan)
        return cls

    def replace(obj, /, **changes):
        """dataclasses.replace, without importing dataclasses for a class made here."""
        names = type(obj).__dict__.get(FIELDS)
        if names is None:
            import dataclasses

            return dataclasses.replace(obj, **changes)
        for name in names:
            if name not in changes:
                changes[name] = getattr(obj, name)
        return obj.__class__(**changes)

    def _standard(cls, options):
        import dataclasses

        for name, value in list(cls.__dict__.items()):
            if isinstance(value, _Field):
                setattr(cls, name, dataclasses.field(**value.options))
        return dataclasses.dataclass(cls, **options)

    def _plan(cls):
        """[(name, default, factory, repr, compare, hash)] when this module makes `cls` exactly as dataclasses
        would, else None."""
        if type(cls) is not type or not cls.__doc__ or any(m in cls.__dict__ for m in _OWN_METHODS):
            return None
        if any(hasattr(b, "__dataclass_fields__") for b in cls.__mro__[1:]):
            return None
        annotations = cls.__dict__.get("__annotations__", {})
        if any(isinstance(v, _Field) and k not in annotations for k, v in cls.__dict__.items()):
            return None  # TypeError there: a field without a type annotation
        plan, seen_default = [], False
        for name, annotation in annotations.items():
            if not isinstance(annotation, str) or any(s in annotation for s in _SPECIAL):
                return None
            value = cls.__dict__.get(name, _MISSING)
            options = value.options if isinstance(value, _Field) else {} if value is _MISSING else {"default": value}
            if not set(options) <= _FAST_OPTIONS or type(value).__module__ == "dataclasses":
                return None
            default, factory = options.get("default", _MISSING), options.get("default_factory", _MISSING)
            if default is not _MISSING and (factory is not _MISSING or type(default).__hash__ is None):
                return None  # the standard decorator raises ValueError for both
            if default is _MISSING and factory is _MISSING:
                if seen_default:
                    return None  # TypeError there: non-default argument follows default argument
            else:
                seen_default = True
            plan.append((name, default, factory, options.get("repr", True), options.get("compare", True),
                         options.get("hash")))
        return plan

    def _make(cls, plan) -> None:
        names = tuple(p[0] for p in plan)
        for name, default, _, *_ in plan:  # class attributes as dataclasses leaves them
            if isinstance(cls.__dict__.get(name), _Field):
                if default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, default)
        qualname, n = cls.__qualname__, len(plan)
        required = sum(1 for p in plan if p[1] is _MISSING and p[2] is _MISSING)
        takes = f"{n + 1}" if required == n else f"from {required + 1} to {n + 1}"
        compared = tuple(p[0] for p in plan if p[4])
        hashed = tuple(p[0] for p in plan if (p[4] if p[5] is None else p[5]))
        shown = tuple(p[0] for p in plan if p[3])
        fieldset = frozenset(names)
        setobj = object.__setattr__

        def __init__(self, *args, **kwargs):
            if len(args) > n:
                raise TypeError(f"{qualname}.__init__() takes {takes} positional arguments but {len(args) + 1} were given")
            for key in kwargs:
                if key not in fieldset:
                    raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {key!r}")
            missing = []
            for i, (name, default, factory, *_) in enumerate(plan):
                if i < len(args):
                    if name in kwargs:
                        raise TypeError(f"{qualname}.__init__() got multiple values for argument {name!r}")
                    value = args[i]
                elif name in kwargs:
                    value = kwargs[name]
                elif default is not _MISSING:
                    value = default
                elif factory is not _MISSING:
                    value = factory()
                else:
                    missing.append(name)
                    continue
                setobj(self, name, value)
            if missing:
                quoted = [repr(m) for m in missing]
                listed = quoted[0] if len(quoted) == 1 else " and ".join(quoted) if len(quoted) == 2 else \
                    f"{', '.join(quoted[:-1])}, and {quoted[-1]}"
                raise TypeError(f"{qualname}.__init__() missing {len(missing)} required positional argument"
                                f"{'s' if len(missing) > 1 else ''}: {listed}")

        @reprlib.recursive_repr()
        def __repr__(self):
            return f"{self.__class__.__qualname__}({', '.join(f'{k}={getattr(self, k)!r}' for k in shown)})"

        def __eq__(self, other):
            if other.__class__ is self.__class__:
                return tuple(getattr(self, k) for k in compared) == tuple(getattr(other, k) for k in compared)
            return NotImplemented

        def __hash__(self):
            return hash(tuple(getattr(self, k) for k in hashed))

        def __setattr__(self, name, value):
            if type(self) is cls or name in fieldset:
                raise _frozen(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in fieldset:
                raise _frozen(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        for fn in (__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__):
            fn.__qualname__ = f"{qualname}.{fn.__name__}"
            setattr(cls, fn.__name__, fn)
        cls.__match_args__ = names
        setattr(cls, FIELDS, names)
        twin = _Twin(cls, plan)
        cls.__dataclass_fields__ = _Lazy("__dataclass_fields__", twin)
        cls.__dataclass_params__ = _Lazy("__dataclass_params__", twin)

    def _frozen(text: str) -> Exception:
        from dataclasses import FrozenInstanceError

        return FrozenInstanceError(text)

    class _Twin:
        """The standard decorator's view of a class made here, built on first use."""

        def __init__(self, cls, plan) -> None:
            self.cls, self.plan = cls, plan

        def made(self):
            import dataclasses

            ns = {"__module__": self.cls.__module__, "__qualname__": self.cls.__qualname__, "__doc__": self.cls.__doc__,
                  "__annotations__": dict(self.cls.__dict__.get("__annotations__", {}))}
            for name, default, factory, shown, compared, hashed in self.plan:
                ns[name] = dataclasses.field(default=default if default is not _MISSING else dataclasses.MISSING,
                                             default_factory=factory if factory is not _MISSING else dataclasses.MISSING,
                                             repr=shown, compare=compared, hash=hashed)
            twin = dataclasses.dataclass(frozen=True)(type(self.cls.__name__, (), ns))
            for attr in ("__dataclass_fields__", "__dataclass_params__"):
                setattr(self.cls, attr, getattr(twin, attr))  # replaces the _Lazy descriptors: built once
            return twin

    class _Lazy:
        """A class attribute that is the twin's attribute of the same name, made when first read."""

        def __init__(self, attr: str, twin: _Twin) -> None:
            self.attr, self.twin = attr, twin

        def __get__(self, obj, owner=None):
            return getattr(self.twin.made(), self.attr)


def field_names(cls) -> tuple[str, ...]:
    """A dataclass's field names in order (made here or by the standard decorator), without importing dataclasses
    for one made here."""
    names = cls.__dict__.get("__frozen_fields__")
    if names is not None:
        return names
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(cls))
