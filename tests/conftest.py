from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / 'data'
GOLDEN = ('tiny3conv_w7', 'tiny1conv_w7', 'tiny3conv_w14_peg')


def load_fixture(name: str) -> dict:
    return torch.load(DATA / f'{name}.pt', weights_only=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
