"""A small integer expression algebra for index math: expressions know their range and simplify as they are built.

Division and modulo are by positive constants, or by a variable expression (a kernel argument: a size that changes
from call to call) known to be at least 1. Rewrites that move terms across `//` or `%` are only made when every term
is known to be non-negative, so C's truncating division and Python's floor division agree on the result; by a
variable, only the few that hold for every value in its range are made.
"""
from __future__ import annotations
import weakref
from functools import cached_property, wraps
from math import gcd

# equal expressions share one canonical node: a node's key is its canonical node's id, found from its own fields and
# its children's keys, so comparing and hashing never walks (or renders) a tree; an expression over kernel arguments
# that no simplification shrinks can be exponentially large as text while small as a graph of shared nodes
_canonical: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class Node:
  min: int
  max: int

  # building
  def __add__(self, other): return make_sum([self, to_node(other)])
  def __radd__(self, other): return make_sum([to_node(other), self])
  def __sub__(self, other): return make_sum([self, to_node(other) * -1])
  def __rsub__(self, other): return make_sum([to_node(other), self * -1])
  def __neg__(self): return self * -1
  def __mul__(self, b): return make_mul(self, b)
  def __rmul__(self, b): return make_mul(self, b)
  def __floordiv__(self, b): return make_div(self, b)
  def __mod__(self, b): return make_mod(self, b)
  def lt(self, b) -> Node: return make_lt(self, b)
  def ge(self, b) -> Node: return make_ge(self, b)

  @cached_property
  def key(self) -> int:
    fields = self.fields()
    canon = _canonical.get(fields)
    if canon is None: canon = _canonical[fields] = self
    self._canon = canon  # kept alive while an equal node lives, so its id stays unique
    return id(canon)

  def fields(self) -> tuple:
    """What makes two expressions equal: the node's kind, its numbers and its children's keys."""
    return (type(self).__name__, *(c.key if isinstance(c, Node) else (c,) for c in self.parts()))

  def parts(self) -> tuple: return self.children()

  @cached_property
  def exact(self) -> tuple | None:
    """(key, each variable's (name, min, max)): what fixes the expression exactly, as its key leaves ranges out (and
    every node's range follows from its variables'); None where a name comes with two ranges."""
    parts = [c.exact for c in self.children()]
    if None in parts: return None
    ranges = frozenset().union(*(r for _, r in parts))
    return None if len({name for name, *_ in ranges}) < len(ranges) else (self.key, ranges)

  @cached_property
  def size(self) -> int:
    """Nodes in the expression as a tree (as rendered): a bound on its text, counted without rendering."""
    return 1 + sum(c.size for c in self.children())

  def __hash__(self): return hash(self.key)
  def __eq__(self, other): return isinstance(other, Node) and self.key == other.key
  def __repr__(self): return f"<{self.render()} in [{self.min}, {self.max}]>"

  def render(self, var=None) -> str:
    """C-like text; `var(name)` renames variables (a renderer may map a loop variable to a tensor name)."""
    raise NotImplementedError

  def vars(self) -> frozenset[str]:
    if "_vars" not in self.__dict__:  # kept: shared subexpressions are asked again and again
      self.__dict__["_vars"] = frozenset().union(*(n.vars() for n in self.children()))
    return self.__dict__["_vars"]

  def children(self) -> tuple[Node, ...]: return ()

  def substitute(self, values: dict[str, Node | int], memo: dict | None = None) -> Node:
    """Replace variables by expressions. `memo` keeps what these values gave each node met (by identity, the node kept
    with it), so a subexpression shared within the expression, or with the caller's other expressions substituted
    with the same values and memo (a kernel's loads, rendered lane by lane), is rewritten once."""
    memo = {} if memo is None else memo
    if id(self) not in memo: memo[id(self)] = (self, self._substitute(values, memo))
    return memo[id(self)][1]

  def _substitute(self, values: dict, memo: dict) -> Node: raise NotImplementedError

  def evaluate(self, env: dict):
    """The value for variables bound to ints or NumPy arrays, with C's division semantics."""
    raise NotImplementedError


class Num(Node):
  def __init__(self, v: int): self.v = self.min = self.max = int(v)
  def parts(self): return (self.v,)
  def render(self, var=None): return str(self.v) if self.v >= 0 else f"({self.v})"
  def _substitute(self, values, memo): return self
  def evaluate(self, env): return self.v


class Var(Node):
  """A named integer in [lo, hi]; `below`, where given, is a kernel argument it stays under (a loop over a reduction
  whose length is an argument), which lets (x*n + ridx) // n simplify to x."""
  def __init__(self, name: str, lo: int, hi: int, below: Node | None = None):
    assert lo <= hi, f"empty range for {name}: [{lo}, {hi}]"
    self.name, self.min, self.max, self.below = name, lo, hi, below
  def render(self, var=None): return var(self.name) if var else self.name
  def parts(self): return (self.name,)  # its range is not part of its identity, as the rendered text has none
  @cached_property
  def exact(self):
    return self.key, frozenset(((self.name, self.min, self.max, None if self.below is None else self.below.key),))
  def vars(self): return frozenset((self.name,))
  def _substitute(self, values, memo): return to_node(values[self.name]) if self.name in values else self
  def evaluate(self, env): return env[self.name]


def text(b, var=None) -> str:
  """An int or a Node as C-like text."""
  return b.render(var) if isinstance(b, Node) else str(b)


def value(b, env: dict) -> int:
  """An int, or a Node at these variables' values (a size over a kernel's arguments at one launch)."""
  return b.evaluate(env) if isinstance(b, Node) else b
def _sub(b, values, memo): return b.substitute(values, memo) if isinstance(b, Node) else b
def _value(b, env): return b.evaluate(env) if isinstance(b, Node) else b


class Binary(Node):
  """a op b, where b is an int or (for a kernel argument) a Node."""
  def children(self): return (self.a, self.b) if isinstance(self.b, Node) else (self.a,)
  def parts(self): return (self.a, self.b)


class Mul(Binary):
  def __init__(self, a: Node, b):
    self.a, self.b = a, b
    if isinstance(b, Node): self.min, self.max = min(c := [a.min * b.min, a.min * b.max, a.max * b.min, a.max * b.max]), max(c)
    else: self.min, self.max = sorted((a.min * b, a.max * b))
  def render(self, var=None): return f"({self.a.render(var)}*{text(self.b, var)})"
  def _substitute(self, values, memo): return self.a.substitute(values, memo) * _sub(self.b, values, memo)
  def evaluate(self, env): return self.a.evaluate(env) * _value(self.b, env)


class Sum(Node):
  def __init__(self, terms: list[Node]):
    self.terms = terms
    self.min, self.max = sum(t.min for t in terms), sum(t.max for t in terms)
  def render(self, var=None):
    text = self.terms[0].render(var)
    for t in self.terms[1:]:
      if isinstance(t, Num) and t.v < 0: text += f"-{-t.v}"
      elif _scaled(t) and t.b < 0:
        text += f"-{t.a.render(var)}" if t.b == -1 else f"-({t.a.render(var)}*{-t.b})"
      else: text += f"+{t.render(var)}"
    return f"({text})"
  def children(self): return tuple(self.terms)
  def _substitute(self, values, memo): return make_sum([t.substitute(values, memo) for t in self.terms])
  def evaluate(self, env): return sum(t.evaluate(env) for t in self.terms)


class Div(Binary):
  def __init__(self, a: Node, b):
    self.a, self.b = a, b
    if not isinstance(b, Node): self.min, self.max = a.min // b, a.max // b
    elif a.min >= 0: self.min, self.max = a.min // b.max, a.max // b.min  # b >= 1
    else: self.min, self.max = min(a.min, 0), max(a.max, 0)
  def render(self, var=None): return f"({self.a.render(var)}/{text(self.b, var)})"
  def _substitute(self, values, memo): return self.a.substitute(values, memo) // _sub(self.b, values, memo)
  def evaluate(self, env): return _c_div(self.a.evaluate(env), _value(self.b, env))


class Mod(Binary):
  def __init__(self, a: Node, b):
    self.a, self.b = a, b
    top = (b.max if isinstance(b, Node) else b) - 1
    self.min, self.max = (0, top) if a.min >= 0 else (-top, top)
  def render(self, var=None): return f"({self.a.render(var)}%{text(self.b, var)})"
  def _substitute(self, values, memo): return self.a.substitute(values, memo) % _sub(self.b, values, memo)
  def evaluate(self, env):
    a, b = self.a.evaluate(env), _value(self.b, env)
    return a - _c_div(a, b) * b


class Lt(Binary):
  """a < b, as 0 or 1."""
  def __init__(self, a: Node, b):
    self.a, self.b, self.min, self.max = a, b, 0, 1
  def render(self, var=None): return f"({self.a.render(var)}<{text(self.b, var)})"
  def _substitute(self, values, memo): return self.a.substitute(values, memo).lt(_sub(self.b, values, memo))
  def evaluate(self, env): return (self.a.evaluate(env) < _value(self.b, env)) * 1


class Ge(Binary):
  """a >= b, as 0 or 1."""
  def __init__(self, a: Node, b):
    self.a, self.b, self.min, self.max = a, b, 0, 1
  def render(self, var=None): return f"({self.a.render(var)}>={text(self.b, var)})"
  def _substitute(self, values, memo): return self.a.substitute(values, memo).ge(_sub(self.b, values, memo))
  def evaluate(self, env): return (self.a.evaluate(env) >= _value(self.b, env)) * 1


class And(Node):
  def __init__(self, terms: list[Node]):
    self.terms, self.min, self.max = terms, 0, 1
  def render(self, var=None): return "(" + "&&".join(t.render(var) for t in self.terms) + ")"
  def children(self): return tuple(self.terms)
  def _substitute(self, values, memo): return make_and([t.substitute(values, memo) for t in self.terms])
  def evaluate(self, env):
    out = 1
    for t in self.terms: out = out * t.evaluate(env)
    return out


def _c_div(a, b: int):
  """Division truncating toward zero, as C and Triton do (works on ints and NumPy arrays), for b > 0."""
  import numpy as np
  q = np.abs(a) // b
  return np.where(np.asarray(a) < 0, -q, q) if isinstance(a, np.ndarray) else (-q if a < 0 else q)


def to_node(x) -> Node:
  if isinstance(x, Node): return x
  if isinstance(x, (int, bool)): return Num(int(x))
  raise TypeError(f"not an index expression: {x!r}")


def _split(n: Node) -> tuple[Node, int]:
  """n as (base, constant factor)."""
  if isinstance(n, Mul) and not isinstance(n.b, Node): return n.a, n.b
  return n, 1


def _scaled(n: Node) -> bool:
  """Whether n is a Mul by a constant."""
  return isinstance(n, Mul) and not isinstance(n.b, Node)


def _constant(b):
  """b as an int where it is one (a Num included), else the Node."""
  return b.v if isinstance(b, Num) else b if isinstance(b, Node) else int(b)


# (make_*, its arguments exactly) -> (the arguments, its result): see made_once
_made: dict = {}
MADE_LIMIT = 1 << 16  # entries kept before the memo starts again: each keeps its expressions alive


def _made_key(x):
  """An argument of make_* as what fixes it exactly: an int, a node's exact key, a list's items; None where that
  cannot be told (a name with two ranges, another kind of value)."""
  if isinstance(x, Node): return x.exact
  if isinstance(x, int): return x
  if isinstance(x, (list, tuple)):
    items = tuple(map(_made_key, x))
    return None if None in items else items
  return None


def made_once(make):
  """make_* with a memo: a pure function of its arguments' structure and ranges, asked again and again for equal
  ones (a vector kernel's lanes and rows each rewrite its loads' index math, which simplifies to the same
  subexpressions again and again). The arguments are kept with the result, so the node ids in its key stay theirs."""
  @wraps(make)
  def made(*args):
    key = (make, *map(_made_key, args))
    if None in key: return make(*args)
    hit = _made.get(key)
    if hit is None:
      if len(_made) >= MADE_LIMIT: _made.clear()
      hit = _made[key] = (tuple(tuple(a) if isinstance(a, list) else a for a in args), make(*args))
    return hit[1]
  return made


@made_once
def make_mul(a: Node, b) -> Node:
  b = _constant(b)
  if isinstance(b, Node):  # a product with a kernel argument: constant factors stay outside, sums are distributed
    if isinstance(a, Num): return make_mul(b, a.v)
    if _scaled(a): return make_mul(make_mul(a.a, b), a.b)
    if _scaled(b): return make_mul(make_mul(a, b.a), b.b)
    if isinstance(a, Sum): return make_sum([make_mul(t, b) for t in a.terms])
    if isinstance(b, Sum): return make_sum([make_mul(a, t) for t in b.terms])
    return Mul(a, b)
  if b == 0: return Num(0)
  if b == 1: return a
  if isinstance(a, Num): return Num(a.v * b)
  if _scaled(a): return make_mul(a.a, a.b * b)
  if isinstance(a, Sum): return make_sum([make_mul(t, b) for t in a.terms])
  return Mul(a, b)


@made_once
def make_sum(nodes: list[Node]) -> Node:
  flat: list[Node] = []
  for n in nodes:
    flat.extend(n.terms if isinstance(n, Sum) else [n])
  const, coeffs, order = 0, {}, []
  for n in flat:
    if isinstance(n, Num): const += n.v; continue
    base, f = _split(n)
    if base.key not in coeffs: order.append(base); coeffs[base.key] = 0
    coeffs[base.key] += f
  terms = [make_mul(b, coeffs[b.key]) for b in order if coeffs[b.key] != 0]
  terms = _merge_div_mod(terms)
  if const != 0: terms.append(Num(const))
  if not terms: return Num(0)
  if len(terms) == 1: return terms[0]
  return Sum(terms)


def _merge_div_mod(terms: list[Node]) -> list[Node]:
  """What ravelling an unravelled index gives back, for y >= 0 (y//c may already read as z//(c*d) when y is z//d):
  (y//c)*(c*k) + (y%c)*k -> y*k, and ((y//c)%m)*(c*k) + (y%c)*k -> (y%(c*m))*k."""
  for j, u in enumerate(terms):
    ubase, k = _split(u)
    if not isinstance(ubase, Mod) or ubase.a.min < 0: continue
    y, c = ubase.a, ubase.b
    quotient = make_div(y, c)
    if isinstance(c, Node):  # by a kernel argument: (y//n)*n*k + (y%n)*k -> y*k
      whole = make_mul(quotient, c)
      i = next((i for i, t in enumerate(terms) if i != j and _split(t) == (whole, k)), None)
      if i is not None: return _regroup([*(x for n, x in enumerate(terms) if n not in (i, j)), make_mul(y, k)])
      continue
    for i, t in enumerate(terms):
      base, f = _split(t)
      if i == j or f != c * k: continue
      if base == quotient: merged = make_mul(y, k)
      elif isinstance(base, Mod) and base.a == quotient: merged = make_mul(make_mod(y, c * base.b), k)
      else: continue
      return _regroup([*(x for n, x in enumerate(terms) if n not in (i, j)), merged])
  return terms


def _regroup(terms: list[Node]) -> list[Node]:
  s = make_sum(terms)
  return list(s.terms) if isinstance(s, Sum) else ([] if isinstance(s, Num) and s.v == 0 else [s])


def _by_variable(a: Node, b: Node, kind):
  """a // b or a % b for a variable b >= 1: only what holds for every b in its range."""
  assert b.min >= 1, f"index {'division' if kind is Div else 'modulo'} by {b.render()}, which may be below 1"
  if isinstance(a, Num) and a.v == 0: return Num(0)
  if a.min >= 0 and a.max < b.min: return Num(0) if kind is Div else a
  if isinstance(a, Mul) and a.b == b: return a.a if kind is Div else Num(0)  # (x*b) // b = x, (x*b) % b = 0
  if _scaled(b) and a.min >= 0:  # by n*c: a // (n*c) = (a//c) // n; (A + r) % (n*c) = A % (n*c) + r for A a multiple
    n, c = b.a, b.b                # of a divisor d of c and r in [0, d) (a vector's lanes past its first)
    if kind is Div: return make_div(make_div(a, c), n)
    split = _split_small(a.terms, c) if isinstance(a, Sum) else None
    if split: return make_sum([make_mod(make_sum(split[0]), b), *split[1]])
  if isinstance(a, Sum) and all(t.min >= 0 for t in a.terms):
    # (x*b + y*b + r) // b = x + y and % b = r, for r in [0, b): r a remainder by b, or a loop index under b
    whole = [t for t in a.terms if isinstance(t, Mul) and t.b == b]
    rest = [t for t in a.terms if not any(t is w for w in whole)]
    if whole and len(rest) <= 1 and all(_under(r, b) for r in rest):
      return make_sum([t.a for t in whole]) if kind is Div else (rest[0] if rest else Num(0))
  return kind(a, b)


def _under(n: Node, b: Node) -> bool:
  """Whether 0 <= n < b for every value of the argument b."""
  if n.min < 0: return False
  if n.max < b.min: return True
  if isinstance(n, Mod): return n.b == b
  return isinstance(n, Var) and n.below is not None and n.below == b


@made_once
def make_div(a: Node, b) -> Node:
  b = _constant(b)
  if isinstance(b, Node): return _by_variable(a, b, Div)
  assert b > 0, "index division by a non-positive number"
  if b == 1: return a
  if isinstance(a, Num): return Num(a.v // b)
  if a.min >= 0 and a.max < b: return Num(0)
  if a.min >= 0:
    if isinstance(a, Div) and not isinstance(a.b, Node): return make_div(a.a, a.b * b)
    if _scaled(a) and a.b % b == 0: return make_mul(a.a, a.b // b)
    if _scaled(a) and b % a.b == 0 and a.b > 0: return make_div(a.a, b // a.b)
    if isinstance(a, Sum) and all(t.min >= 0 for t in a.terms):
      if any(not isinstance(t, Num) and _split(t)[1] > b and _split(t)[1] % b for t in a.terms):
        # x*(q*b + r) = (x*q)*b + x*r: the first part divides out
        whole, rest = [], []
        for t in a.terms:
          base, f = _split(t)
          if not isinstance(t, Num) and f > b and f % b: whole.append(make_mul(base, f // b)); rest.append(make_mul(base, f % b))
          else: rest.append(t)
        return make_sum(whole + [make_div(make_sum(rest), b)])
      const = sum(t.v for t in a.terms if isinstance(t, Num))
      if const >= b:  # (x + q*b + r) // b = (x + r) // b + q
        rest = [t for t in a.terms if not isinstance(t, Num)]
        return make_sum([make_div(make_sum(rest + [Num(const % b)]), b), Num(const // b)])
      whole = [t for t in a.terms if _split(t)[1] % b == 0 or (isinstance(t, Num) and t.v % b == 0)]
      rest = [t for t in a.terms if not any(t is w for w in whole)]
      if whole:
        return make_sum([*(_exact_div(t, b) for t in whole), make_div(make_sum(rest), b) if rest else Num(0)])
      # every term's factor shares g with b: divide them through
      g = b
      for t in a.terms: g = gcd(g, _split(t)[1] if not isinstance(t, Num) else t.v)
      if g > 1: return make_div(make_sum([_exact_div(t, g) for t in a.terms]), b // g)
      split = _split_small(a.terms, b)
      if split: big, _, c = split; return make_div(make_sum([_exact_div(t, c) for t in big]), b // c)
  return Div(a, b)


def _split_small(terms: list[Node], d: int):
  """Terms as (multiples of c, a remainder in [0, c), c) for a c dividing d, when they fall apart that way."""
  factors = sorted({abs(_split(t)[1]) for t in terms if not isinstance(t, Num)} | {abs(t.v) for t in terms if isinstance(t, Num)}, reverse=True)
  const = sum(t.v for t in terms if isinstance(t, Num))
  for c in sorted({gcd(f, d) for f in factors}, reverse=True):  # the part of each factor that divides d
    if c <= 1: continue
    # a constant splits too: its multiple of c joins the big terms (8*x + 9 is 8*(x + 1) + 1)
    big = [t for t in terms if not isinstance(t, Num) and _split(t)[1] % c == 0] + ([Num(const - const % c)] if const - const % c else [])
    small = [t for t in terms if not isinstance(t, Num) and _split(t)[1] % c] + ([Num(const % c)] if const % c else [])
    if big and small and all(t.min >= 0 for t in small) and sum(t.max for t in small) < c: return big, small, c
  return None


def _exact_div(t: Node, b: int) -> Node:
  if isinstance(t, Num): return Num(t.v // b)
  base, f = _split(t)
  return make_mul(base, f // b)


@made_once
def make_mod(a: Node, b) -> Node:
  b = _constant(b)
  if isinstance(b, Node): return _by_variable(a, b, Mod)
  assert b > 0, "index modulo by a non-positive number"
  if b == 1: return Num(0)
  if isinstance(a, Num): return Num(a.v % b)
  if a.min >= 0 and a.max < b: return a
  if a.min >= 0:
    if isinstance(a, Mod) and not isinstance(a.b, Node) and a.b % b == 0: return make_mod(a.a, b)
    if _scaled(a) and a.b % b == 0: return Num(0)
    if _scaled(a) and a.b > 0 and b % a.b == 0: return make_mul(make_mod(a.a, b // a.b), a.b)
    if isinstance(a, Sum) and all(t.min >= 0 for t in a.terms):
      if any(not isinstance(t, Num) and _split(t)[1] > b and _split(t)[1] % b for t in a.terms):  # factors modulo b
        return make_mod(make_sum([make_mul(_split(t)[0], _split(t)[1] % b) if not isinstance(t, Num) and _split(t)[1] > b
                                  else t for t in a.terms]), b)
      const = sum(t.v for t in a.terms if isinstance(t, Num))
      if const >= b: return make_mod(make_sum([t for t in a.terms if not isinstance(t, Num)] + [Num(const % b)]), b)
      kept = [t for t in a.terms if not (_split(t)[1] % b == 0 and not isinstance(t, Num)) and
              not (isinstance(t, Num) and t.v % b == 0)]
      if len(kept) < len(a.terms): return make_mod(make_sum(kept), b) if kept else Num(0)
      split = _split_small(a.terms, b)
      if split:  # (c*A + small) % d = c*(A % (d/c)) + small, when small stays below c
        big, small, c = split
        return make_sum([make_mul(make_mod(make_sum([_exact_div(t, c) for t in big]), b // c), c), *small])
  return Mod(a, b)


@made_once
def make_lt(a: Node, b) -> Node:
  b = _constant(b)
  if isinstance(b, Node):  # a bound that is a kernel argument
    return Num(1) if a.max < b.min else Num(0) if a.min >= b.max else Lt(a, b)
  if a.max < b: return Num(1)
  if a.min >= b: return Num(0)
  # (x*c) < b  <=>  x < ceil(b/c) for c > 0
  if _scaled(a) and a.b > 0: return make_lt(a.a, -(-b // a.b))
  if isinstance(a, Div) and not isinstance(a.b, Node) and a.a.min >= 0: return make_lt(a.a, b * a.b)  # (x//c) < b  <=>  x < b*c for x >= 0
  return Lt(a, b)


@made_once
def make_ge(a: Node, b) -> Node:
  b = _constant(b)
  if isinstance(b, Node): return Num(1) if a.min >= b.max else Num(0) if a.max < b.min else Ge(a, b)
  if a.min >= b: return Num(1)
  if a.max < b: return Num(0)
  if _scaled(a) and a.b > 0: return make_ge(a.a, -(-b // a.b))  # x*c >= b  <=>  x >= ceil(b/c)
  if isinstance(a, Div) and not isinstance(a.b, Node) and a.a.min >= 0: return make_ge(a.a, b * a.b)  # (x//c) >= b  <=>  x >= b*c for x >= 0
  return Ge(a, b)


@made_once
def make_and(nodes: list[Node]) -> Node:
  terms = []
  for n in nodes:
    if isinstance(n, Num):
      if n.v == 0: return Num(0)
      continue
    terms.extend(n.terms if isinstance(n, And) else [n])
  uniq = list({t.key: t for t in terms}.values())
  if not uniq: return Num(1)
  return uniq[0] if len(uniq) == 1 else And(uniq)
