from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / 'data'
GOLDEN = ('tiny3conv_w7', 'tiny1conv_w7', 'tiny3conv_w14_peg')


def load_fixture(name: str) -> dict:
    return torch.load(DATA / f'{name}.pt', weights_only=False)


def official_arch(fixture: dict) -> dict:
    """The official constructor's kwargs of a fixture as a backbone arch:
    without the classifier's ``num_classes`` and ``det_norm``, which are
    arguments of their own."""
    return {
        k: v
        for k, v in fixture['official_kwargs'].items()
        if k not in ('num_classes', 'det_norm')
    }


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
