"""RunLog sums micro-batches where they were computed and logs their means once."""

import torch

from cpc.train.metrics import RunLog


def test_logged_record_is_the_mean_of_the_micro_batches(tmp_path):
    log = RunLog(
        tmp_path,
        tensorboard=False,
        enabled=False,
        resume_step=0,
        total_steps=4,
        progress=False,
        seconds_per_sample=None,
        device=torch.device("cpu"),
    )
    log.add(torch.tensor(2.0), torch.tensor([0.5, 0.25]), items=8, samples=80)
    log.add(torch.tensor(4.0), torch.tensor([0.25, 0.75]), items=8, samples=80)
    log.step(1, lr=0.1, emit=False)  # not logged: the sums carry on
    log.add(torch.tensor(6.0), torch.tensor([0.0, 0.5]), items=8, samples=80)
    log.step(2, lr=0.1, emit=True)
    record = log.last_train
    assert record["step"] == 2
    assert record["loss"] == 4.0
    assert record["accuracy"] == [0.25, 0.5]
    log.add(torch.tensor(1.0), torch.tensor([1.0, 1.0]), items=8, samples=80)
    log.step(3, lr=0.1, emit=True)  # a fresh sum after each record
    assert log.last_train["loss"] == 1.0 and log.last_train["accuracy"] == [1.0, 1.0]
