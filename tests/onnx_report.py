"""Runs onnx's BackendTest suite on lazygrad (tests/onnx_backend.py) and prints pass/fail per ONNX op and the totals.

  python tests/onnx_report.py [-n JOBS] [--markdown] [pytest args, e.g. -k conv]

Node tests are counted by the op they test (an `_expanded` test, the op's function body, counts for that op); the
light and converted models are listed by name. Only the CPU tests count (the CUDA copies are skipped)."""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))


def test_ops() -> dict[str, str]:
  """Node test name (without _cpu) -> the op it tests."""
  warnings.filterwarnings("ignore")
  from onnx.backend.test.loader import load_node_model_tests
  cases = {tc.name: tc for tc in load_node_model_tests()}
  ops = {}
  for name, tc in cases.items():
    base = re.sub(r"_expanded(_ver\d+)?$", "", name)
    model = cases.get(base, tc).model
    ops[name] = model.graph.node[0].op_type if len(model.graph.node) == 1 else \
      collections.Counter(n.op_type for n in model.graph.node).most_common(1)[0][0]
  return ops


def run(jobs: int, extra: list[str]) -> dict[tuple[str, str], str]:
  """(class, test name) -> 'pass' | 'fail' | 'skip' for every CPU test."""
  with tempfile.TemporaryDirectory() as tmp:
    xml = os.path.join(tmp, "report.xml")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(HERE, "onnx_backend.py"),
           f"--junitxml={xml}", "-k", "_cpu", *(["-n", str(jobs)] if jobs > 1 else []), *extra]
    subprocess.run(cmd, stdout=subprocess.DEVNULL)
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
      name = case.get("name")
      if not name.endswith("_cpu"): continue
      kinds = {c.tag for c in case}
      out[(case.get("classname").split(".")[-1], name[:-4])] = \
        "fail" if kinds & {"failure", "error"} else "skip" if "skipped" in kinds else "pass"
    return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("-n", type=int, default=2)
  ap.add_argument("--markdown", action="store_true", help="print the per-op table as Markdown (for the README)")
  args, extra = ap.parse_known_args()
  results = run(args.n, extra)
  ops = test_ops()
  per_op = collections.defaultdict(lambda: collections.Counter())
  models = {}
  for (cls, name), status in results.items():
    if cls == "OnnxBackendNodeModelTest": per_op[ops.get(name, "?")][status] += 1
    else: models[f"{cls.replace('OnnxBackend', '').replace('Test', '')}: {name}"] = status
  node = collections.Counter(s for (cls, _), s in results.items() if cls == "OnnxBackendNodeModelTest")
  ran = node["pass"] + node["fail"]
  if args.markdown:
    print("| op | passed | failed |\n| --- | --- | --- |")
    for o in sorted(per_op): print(f"| {o} | {per_op[o]['pass']} | {per_op[o]['fail']} |")
  else:
    for o in sorted(per_op):
      c = per_op[o]
      print(f"{o:32s} {'PASS' if not c['fail'] else 'FAIL' if not c['pass'] else 'part'}  {c['pass']:3d} passed {c['fail']:3d} failed")
    for m in sorted(models): print(f"{m:60s} {models[m]}")
  failing = sorted(o for o, c in per_op.items() if c["fail"])
  print(f"\nnode tests: {node['pass']} of {ran} passed ({100 * node['pass'] / max(ran, 1):.1f}%), {node['skip']} skipped")
  print(f"ops with a failing test ({len(failing)}): {', '.join(failing)}")
  mc = collections.Counter(models.values())
  print(f"model tests: {mc['pass']} passed, {mc['fail']} failed")


if __name__ == "__main__":
  main()
