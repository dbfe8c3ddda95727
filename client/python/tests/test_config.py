"""Properties of the RFC 8785 canonicalization beyond the shared vectors:
on random JSON values it is idempotent, keeps the value, and ignores the
spelling of its input (key order, whitespace, escapes)."""

from __future__ import annotations

import json
import random
import unittest

import agentlog
from agentlog import config as c


def value(r: random.Random, depth: int = 0) -> object:
    k = r.randrange(8 if depth < 4 else 5)
    if k == 0:
        return None
    if k == 1:
        return r.random() < 0.5
    if k == 2:
        return r.choice([0.0, -1.5, 1e21, 1e-7, 123456789012.25, r.uniform(-1e30, 1e30), float(r.randrange(-2**60, 2**60)), 5e-324])
    if k in (3, 4):
        return "".join(chr(r.choice([0x1F, 0x22, 0x5C, 0x41, 0x7F, 0xE9, 0x2028, 0x20AC, 0x1F600, r.randrange(0x20, 0xD7FF)])) for _ in range(r.randrange(6)))
    if k == 5:
        return [value(r, depth + 1) for _ in range(r.randrange(4))]
    return {str(value(r, 9)) + str(i): value(r, depth + 1) for i in range(r.randrange(4))}


class Canonical(unittest.TestCase):
    def test_random_values(self) -> None:
        r = random.Random(8785)
        for i in range(2000):
            v = value(r)
            canon = c.canonicalize(json.dumps(v))
            with self.subTest(i=i, value=v):
                self.assertEqual(c.parse_json(canon), v)  # numbers as doubles, as JCS reads them
                self.assertEqual(c.canonicalize(canon), canon)
                # Another spelling of the same value: keys reversed, ASCII escapes, indentation.
                other = json.dumps(_reversed(v), ensure_ascii=True, indent=2)
                self.assertEqual(c.canonicalize(other), canon)

    def test_refusals(self) -> None:
        for bad in ['{"a":1,"a":1}', "[Infinity]", '"\\udc00"', "", "1 2", b"\xef\xbb\xbf{}"]:
            with self.subTest(bad=bad), self.assertRaises(agentlog.ConfigError) as cm:
                c.canonicalize(bad)
            self.assertEqual(cm.exception.reason, "invalid-json")


def _reversed(v: object) -> object:
    if isinstance(v, dict):
        return {k: _reversed(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [_reversed(e) for e in v]
    return v


if __name__ == "__main__":
    unittest.main()
