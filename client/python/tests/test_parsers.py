"""Never-crash tests of the parsers: seeded random mutations of the vector
inputs may only be refused with the SDK's typed errors, and the raw member
scanner agrees with the json module on every object it accepts."""

from __future__ import annotations

import json
import random
import sys
import unittest

import agentlog
from agentlog import verify as v

from .test_vectors import load

MUTATIONS = 3000


def mutate(rng: random.Random, s: str) -> str:
    b = bytearray(s.encode())
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            del b[min(i, len(b) - 1)]
        elif op == 1:
            b.insert(i, rng.choice(b"\n \x00{}[]\",:\\+-0123456789abcAZ=/\xe2\x80\x94\r"))
        elif op == 2 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        else:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j : j + rng.randint(1, 8)]
    return b.decode("utf-8", "replace")


class NeverCrash(unittest.TestCase):
    def test_checkpoints_and_policies(self) -> None:
        f = load("checkpoints.json")
        rng = random.Random(1)
        policies = list(f["policies"].values())
        for _ in range(MUTATIONS):
            c = rng.choice(f["vectors"])
            raw = mutate(rng, c["checkpoint"])
            pol = mutate(rng, rng.choice(policies)) if rng.random() < 0.3 else rng.choice(policies)
            try:
                v.verify_checkpoint(raw, time_key=f["time_vkey"], policy=pol)
            except agentlog.VerificationError:
                pass

    def test_tlog_proofs(self) -> None:
        f = load("tlog_proofs.json")
        rng = random.Random(2)
        for _ in range(MUTATIONS):
            c = rng.choice(f["vectors"])
            try:
                v.verify_tlog_proof(mutate(rng, c["proof"]), c["entry"], policy=f["policies"]["any"])
            except agentlog.VerificationError:
                pass

    def test_configurations(self) -> None:
        f = load("configs.json")
        docs = [c["document"] for c in f["configs"]] + [c["json"] for c in f["canonical"] if "json" in c]
        rng = random.Random(5)
        for _ in range(MUTATIONS):
            m = mutate(rng, rng.choice(docs))
            try:
                agentlog.parse_config(m)
            except agentlog.ConfigError:
                pass
            try:
                canon = agentlog.canonicalize(m)
            except agentlog.ConfigError:
                continue
            # What the strict parser accepts, the json module accepts too,
            # with the same value (a magnitude beyond the largest double kept
            # as the largest, as jsontext does).
            def clamp(t: str) -> float:
                return max(-sys.float_info.max, min(sys.float_info.max, float(t)))

            self.assertEqual(agentlog.canonicalize(json.dumps(json.loads(m, parse_float=clamp, parse_int=clamp))), canon, m)

    def test_witness_key_policies(self) -> None:
        f = load("witness_keys.json")
        rng = random.Random(6)
        for _ in range(MUTATIONS):
            c, cp = rng.choice(f["keys"]), rng.choice(f["vectors"])
            try:
                agentlog.verify_checkpoint(mutate(rng, cp["checkpoint"]), policy=mutate(rng, c["policy"]))
            except agentlog.VerificationError:
                pass

    def test_agent_keys(self) -> None:
        rng = random.Random(3)
        for _ in range(MUTATIONS):
            c = rng.choice(load("agent_keys.json")["vectors"])
            try:
                agentlog.parse_agent_key(mutate(rng, c["file"] or "x"))
            except agentlog.KeyFileError:
                pass

    def test_leaves_and_raw_members(self) -> None:
        f = load("records.json")
        rng = random.Random(4)
        extra = ['{"a" : 1 , "b":[1,{"c":"}"}], "d" : "x\\"y", "e":-1.5e3 ,"f":null,"g":{}}', "{}", '{"k":"\\u003c"}']
        for _ in range(MUTATIONS):
            text = mutate(rng, rng.choice([c["leaf"] for c in f["leaves"]] + extra))
            m = v.raw_members(text)
            try:
                ref = json.loads(text)
            except ValueError:
                ref = None
            if not isinstance(ref, dict):
                self.assertIsNone(m, text)
            else:
                assert m is not None
                self.assertEqual(set(m), set(ref), text)
                for k, raw in m.items():
                    if list(m).count(k) == 1:
                        self.assertEqual(json.loads(raw), ref[k], text)
            try:
                v.verify_leaf_signature(text, bytes(32))
            except agentlog.VerificationError:
                pass


if __name__ == "__main__":
    unittest.main()
