"""The ``shiftbench`` command: run, list, data, table, reproduce, regress, new-method, check-method,
check-dataset."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

from shiftbench.errors import ShiftbenchError

_SWEEP = re.compile(r"^([A-Za-z_][\w.]*)=([^\[\]{}'\"=]+,[^\[\]{}'\"=]*)$")


def lists_for_single_run(overrides: list[str]) -> list[str]:
    """Outside ``-m``, ``key=a,b`` means the list ``key=[a,b]`` (one run over both), not a sweep."""
    return [f"{m.group(1)}=[{m.group(2)}]" if (m := _SWEEP.match(o)) else o for o in overrides]


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.hydra_app import compose, multirun, run_experiment

    overrides = list(args.overrides) + extra
    if args.dry_run:
        overrides.append("dry_run=true")
    if args.publish:
        overrides.append("publish=true")
    if args.multirun:
        multirun(overrides)
        return 0
    overrides = lists_for_single_run(overrides)
    run_experiment({**compose(overrides), "overrides": [o for o in overrides if o != "dry_run=true"]})
    return 0


def cmd_list(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.plugin_index import catalog

    def show(title: str, plugins: dict[str, dict], detail: Callable[[dict], str]) -> None:
        print(f"{title}:")
        for name, fields in plugins.items():
            print(f"  {name:<28} {detail(fields)}")

    what = args.what
    found = catalog()  # the plugins' metadata, from the cached index when it is current (no torch import)
    if what in (None, "datasets"):
        datasets = found.section("datasets")
        show("datasets", {n: f for n, f in datasets.items() if not f["experimental"]}, lambda f: f["summary"])
        show("experimental datasets (no model or method family consumes them yet; `shiftbench run` refuses them)",
             {n: f for n, f in datasets.items() if f["experimental"]}, lambda f: f"{f['summary']}  [{f['experimental']}]")
    if what in (None, "models"):
        show("models", found.section("models"), lambda f: f["summary"])
    if what in (None, "methods"):
        show("methods", found.section("methods"),
             lambda f: f"[{f['family']}] grid={f['grid']}  {f['summary']}"
                       + ("".join(f"\n      {line}" for line in f["hyperparameters"]) if args.verbose else ""))
    if what in (None, "scorers"):
        show("scorers", found.section("scorers"),
             lambda f: f"{'[oracle: uses target labels] ' if f['oracle'] else ''}"
                       f"[{', '.join(f['protocols'])}] judges {'/'.join(f['families'])}  {f['summary']}")
    if what in (None, "experiments", "suites"):
        from importlib import resources

        root = resources.files("shiftbench.configs")
        for kind in ("experiment", "suite") if what is None else (what.rstrip("s"),):
            names = sorted(p.name[:-5] for p in root.joinpath(kind).iterdir() if p.name.endswith(".yaml")) \
                if root.joinpath(kind).is_dir() else []
            print(f"{kind}s:\n" + "".join(f"  {n}\n" for n in names), end="")
    for kind in ("datasets", "methods", "models"):
        found.section(kind)
        for module, tb in found.import_errors[kind].items():
            print(f"warning: {kind.rstrip('s')} module {module!r} failed to import:\n{tb}", file=sys.stderr)
    return 0


def dataset_options(pairs: list[str]) -> dict[str, object]:
    """``-o KEY=VALUE`` pairs as dataset options, each value read as a YAML scalar (``n_train=1000`` is an int)."""
    import yaml

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ShiftbenchError(f"dataset option {pair!r} is not KEY=VALUE (e.g. -o root_dir=data)")
        options[key] = yaml.safe_load(value)
    return options


def cmd_data(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench import plugin_index

    options = dataset_options(args.option)
    if args.action == "info":
        key = ["data info", args.name, json.dumps(options, sort_keys=True, default=str)]
        text = plugin_index.remembered(key)  # an offline dataset's splits, as printed for the current code
        if text is None:
            from shiftbench import datasets

            ds = datasets.load(args.name, **options)
            text = (f"{args.name}: {ds.n_classes} classes, groups by {ds.grouper.columns or '(none)'}\n"
                    f"{ds.info().to_string(index=False)}\n")
            cls = datasets.adapter_class(args.name)
            if cls.name == args.name and plugin_index.is_offline(cls):  # a registered name, not one of a family
                plugin_index.remember(key, text)
        print(text, end="")
        return 0
    from shiftbench import datasets

    cls = datasets.registry.get(args.name)
    download = getattr(cls, "download", None)
    if download is None:
        print(f"{args.name} needs no download (its data ships inside installed packages)")
        return 0
    download(root_dir=options.get("root_dir", "data"), yes=args.yes)
    return 0


def cmd_table(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.cache import default_cache_dir
    from shiftbench.collect import collect
    from shiftbench.experiment_view import ExperimentView
    from shiftbench.protocols import NoSelection
    from shiftbench.report import check_metric
    from shiftbench.results_folder import RENDERERS
    from shiftbench.selection_report import selection_board

    stores = args.store or [default_cache_dir() / "runs" / "default"]
    found = collect(stores)
    view = ExperimentView.load(stores[0]) or ExperimentView({})  # the selection and columns the run used
    metric = args.metric or view.metric
    reference = args.reference or view.reference
    frame, notes = view.present(found)  # the frame and notes `shiftbench run` shows
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if frame.empty:
        raise ShiftbenchError(f"no current result records under {', '.join(map(str, stores))}; run `shiftbench run` "
                              "first or pass --store DIR")
    check_metric(frame, metric)
    if reference not in set(frame["method"]):
        raise ShiftbenchError(f"reference method {reference!r} has no records here; methods: "
                              f"{', '.join(sorted(set(frame['method'])))}")
    protocol = NoSelection([]) if args.per_setting else view.protocol()
    text = RENDERERS[args.format](selection_board(frame, protocol, metric, reference, args.test, notes))
    if args.output is None:
        print(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def cmd_store(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.cache import default_cache_dir
    from shiftbench.collect import garbage

    store = args.store or default_cache_dir() / "runs" / "default"
    found = garbage(store)
    for path, reason in found:
        print(f"{'would remove' if args.dry_run else 'removing'} {path}: {reason}")
        if not args.dry_run:
            path.unlink(missing_ok=True)
    print(f"{store}: {len(found)} records of other code or unreadable"
          + (" (dry run: nothing removed)" if args.dry_run else " removed"))
    return 0


def cmd_reproduce(args: argparse.Namespace, extra: list[str]) -> int:
    if args.list or args.name is None:
        from shiftbench.plugin_index import catalog

        found = catalog()
        found.section("reproductions")
        print(found.reproductions_text)
        return 0
    from shiftbench.reproduction_report import reproduce

    reproduce(args.name, args.output, args.quick)
    return 0


def cmd_regress(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.regression import regress

    return regress(args.suite, args.baseline, args.update, args.report, args.store)


def cmd_new_method(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench.scaffold import new_method

    paths = new_method(args.name, args.family, args.methods_dir, args.tests_dir, args.force)
    print("wrote " + ", ".join(map(str, paths)))
    print(f"next: edit {paths[0]}, then `shiftbench check-method {args.name}` and "
          f"`shiftbench run method=[source_only,{args.name}]`")
    return 0


def cmd_check_method(args: argparse.Namespace, extra: list[str]) -> int:
    if args.list:
        from shiftbench.plugin_index import catalog

        print("contract checks (run one with --check NAME):")
        for check, rule in catalog().checks.items():
            print(f"  {check:<18} {rule}")
        return 0
    if args.name is None:
        raise ShiftbenchError("check-method needs a method name (shiftbench list methods) or --list")
    from shiftbench import methods
    from shiftbench.contract import check_method

    return print_checks(args.name, check_method(methods.registry.get(args.name), args.check or None))


def print_checks(name: str, results: list) -> int:
    """PASS/FAIL/SKIP per contract check (messages indented under it) and a summary line; 1 if any failed."""
    marks = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
    for r in results:
        print(f"{marks[r.status]}  {r.check}" + (f"\n      {r.message.strip().replace(chr(10), chr(10) + '      ')}"
                                                  if r.message else ""))
    failed = [r.check for r in results if r.status == "failed"]
    print(f"{name}: {len(results) - len(failed)}/{len(results)} checks passed or skipped"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def cmd_check_dataset(args: argparse.Namespace, extra: list[str]) -> int:
    from shiftbench import datasets
    from shiftbench.dataset_contract import check_dataset

    return print_checks(args.name, check_dataset(datasets.load(args.name, **dataset_options(args.option)),
                                                 args.check or None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftbench", description="Evaluate methods under distribution shift.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment (Hydra overrides; default: the offline digits benchmark)")
    run.add_argument("-m", "--multirun", action="store_true", help="sweep comma-separated overrides as separate jobs")
    run.add_argument("--dry-run", action="store_true", help="print the cells and how many are cached, compute nothing")
    run.add_argument("--publish", action="store_true",
                     help="write the tables into the checkout's results/<experiment>/ (the committed ones) instead of "
                          "the run's own folder under the cache")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method=[source_only,bn_adapt] seed=0,1,2")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="datasets, models, methods (with grids), scorers, experiments, suites")
    lst.add_argument("what", nargs="?", choices=["datasets", "models", "methods", "scorers", "experiments", "suites"])
    lst.add_argument("--verbose", "-v", action="store_true",
                     help="methods: each declared hyperparameter, name=default, the values it accepts and its doc")
    lst.set_defaults(func=cmd_list)

    data = sub.add_parser("data", help="download a dataset or show its splits")
    data.add_argument("action", choices=["download", "info"])
    data.add_argument("name")
    data.add_argument("--option", "-o", action="append", default=[], help="dataset option KEY=VALUE (e.g. root_dir=data)")
    data.add_argument("--yes", "-y", action="store_true", help="do not ask before a large download")
    data.set_defaults(func=cmd_data)

    table = sub.add_parser("table", help="print (or write) the leaderboard of stored records")
    table.add_argument("--format", choices=["md", "csv", "latex", "html"], default="md",
                       help="md/latex: marked text table; csv: long table with CI, p-values, ranks; html: a page with plots")
    table.add_argument("--metric", help="metric of the table (default: the one the run used, else acc_avg)")
    table.add_argument("--per-setting", action="store_true",
                       help="one row per hyperparameter setting, also for an experiment that selects settings")
    table.add_argument("--store", type=Path, action="append",
                       help="record store of an experiment, repeatable (default: the default experiment's)")
    table.add_argument("--reference", help="method every row is tested against (default: the run's, else source_only)")
    table.add_argument("--test", choices=["ttest", "wilcoxon"], default="ttest", help="paired test over matched cells")
    table.add_argument("--output", "-o", type=Path, help="write to this file instead of printing")
    table.set_defaults(func=cmd_table)

    store = sub.add_parser("store", help="maintain a record store")
    store.add_argument("action", choices=["gc"], help="gc: remove records of other code versions and unreadable files")
    store.add_argument("--store", type=Path, help="record store (default: the default experiment's)")
    store.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    store.set_defaults(func=cmd_store)

    repro = sub.add_parser("reproduce", help="reproduce a paper table: ours, paper, delta per cell")
    repro.add_argument("name", nargs="?", help="reproduction name (see --list)")
    repro.add_argument("--list", action="store_true", help="list the reproductions, their citations and data needs")
    repro.add_argument("--output", type=Path, default=Path("results") / "reproduced",
                       help="parent folder: writes <output>/<name>/table.md, table.csv and records.csv")
    repro.add_argument("--quick", action="store_true", help="a reduced setting (for tests and a first look)")
    repro.set_defaults(func=cmd_reproduce)

    regress = sub.add_parser("regress", help="run a regression suite and compare it with its baseline (exit 1 on a regression)")
    regress.add_argument("--suite", default="smoke", help="suite in configs/suite/ (shiftbench list suites)")
    regress.add_argument("--baseline", type=Path, help="baseline CSV (default results/baselines/<suite>.csv)")
    regress.add_argument("--update", action="store_true", help="rewrite the baseline with this run's values")
    regress.add_argument("--report", type=Path, help="markdown report (default results/regression/<suite>.md)")
    regress.add_argument("--store", type=Path, help="record store for the run (default: a fresh temporary one)")
    regress.set_defaults(func=cmd_regress)

    new = sub.add_parser("new-method", help="write a working, documented method plugin and its test from a template")
    new.add_argument("name", help="plugin name (a lower-case Python identifier)")
    new.add_argument("--family", required=True, choices=["output", "tta", "domain", "estimator"])
    new.add_argument("--methods-dir", type=Path, help="where to write NAME.py (default: the methods/ folder)")
    new.add_argument("--tests-dir", type=Path, help="where to write test_method_NAME.py (default: tests/ beside methods/)")
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    new.set_defaults(func=cmd_new_method)

    check = sub.add_parser("check-method", help="run the plugin contract suite on a method")
    check.add_argument("name", nargs="?", help="method plugin name (shiftbench list methods)")
    check.add_argument("--list", action="store_true", help="list the contract checks and the rule each enforces")
    check.add_argument("--check", action="append", help="run only this check (repeatable)")
    check.set_defaults(func=cmd_check_method)

    check_data = sub.add_parser("check-dataset", help="run the dataset contract suite on a built dataset")
    check_data.add_argument("name")
    check_data.add_argument("--option", "-o", action="append", default=[],
                            help="dataset option KEY=VALUE, VALUE read as YAML (e.g. -o n_train=1000)")
    check_data.add_argument("--check", action="append", help="run only this check (repeatable)")
    check_data.set_defaults(func=cmd_check_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except ShiftbenchError as exc:
        print(f"shiftbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("shiftbench: interrupted; finished cells are stored, so running the same command again resumes",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
