"""Every tl.annotate keyword a command-line user can set has a flag with the same default."""

from __future__ import annotations

import argparse
import inspect

import sc_cello1 as cello1
from sc_cello1.tl._annotate_cli import add_annotate_parser

#: Keywords the command line does not offer, each with its reason.
NOT_ON_THE_COMMAND_LINE = {
    "adata": "the IN.h5ad argument",
    "copy": "the command writes OUT.h5ad; the input file is never changed",
    "backend_kwargs": "set in parts: --base-url, --api-key, --timeout, --max-retries, ...",
    "unique": "deprecated alias of one_to_one",
    "reference_model": "a Python object (a trained model)",
}


def _annotate_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    return add_annotate_parser(sub)


def test_every_annotate_keyword_has_a_flag_whose_default_is_the_signatures():
    actions = {a.dest: a for a in _annotate_parser()._actions}
    missing, different = [], []
    for name, param in inspect.signature(cello1.tl.annotate).parameters.items():
        if name in NOT_ON_THE_COMMAND_LINE:
            continue
        if name not in actions:
            missing.append(name)
            continue
        default = actions[name].default
        want = param.default
        if (tuple(default) if isinstance(default, list) else default) != want:
            different.append(f"{name}: flag {default!r}, signature {want!r}")
    assert missing == [], f"keywords without a flag: {missing}"
    assert different == [], "defaults that differ:\n" + "\n".join(different)
    assert set(NOT_ON_THE_COMMAND_LINE) <= set(inspect.signature(cello1.tl.annotate).parameters)


def test_context_fields_and_use_raw_reach_annotate_as_typed():
    parser = _annotate_parser()
    args = parser.parse_args(["x.h5ad", "-o", "y.h5ad", "--context-fields", "smoker", "stage"])
    assert tuple(args.context_fields) == ("smoker", "stage") and args.use_raw is None
    args = parser.parse_args(["x.h5ad", "-o", "y.h5ad", "--use-raw", "--reference-use-raw"])
    assert args.use_raw is True and args.reference_use_raw is True
