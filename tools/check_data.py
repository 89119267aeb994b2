"""Check every file of a config's datasets before a long run: decode each
image (on all cores, with a progress bar) and check each annotation.

    python tools/check_data.py CONFIG [--phases train val] [--nproc 8]

Prints a count per dataset, then each bad file and why; exits 1 if there
is any.
"""
import argparse
import sys

from mmengine.config import DictAction

import mmregionvit  # noqa: F401  (registers the scope)
from mmregionvit.utils.config import load_config
from mmregionvit.utils.data_checks import find_bad, summary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Check a dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--phases',
        nargs='+',
        default=['train', 'val', 'test'],
        choices=['train', 'val', 'test'],
        help='the datasets to check (default: all the config has)')
    parser.add_argument(
        '--nproc', type=int, help='processes to decode on (default: all)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        report = find_bad(cfg, args.phases, args.nproc)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print('\n'.join(summary(report)))
    return 1 if any(r['undecodable'] or r['annotations']
                    for r in report.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
