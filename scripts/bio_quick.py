"""The bio headline at CPU scale, without the recipe: BIO-pretrain, QA-finetune on P_train, exact match on P_test.

This is how the numbers in the #15 closing note were measured (with an earlier inline copy of the same
protocol). ``physlm run bio`` supersedes it once it lands. Example (about 10 minutes on 2 cores)::

    .venv/bin/python scripts/bio_quick.py --augmentation multi5+permute --n-people 250 --steps 800 --mode full
"""

from __future__ import annotations

import argparse
import time

from physlm.analysis.bio_eval import bio_memorisation, qa_accuracy
from physlm.tasks.bio import BioConfig, BioTask
from physlm.training.bio_finetune import QAFinetuneConfig, finetune_qa
from physlm.training.model_config import ModelConfig
from physlm.training.train_config import TrainConfig
from physlm.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--augmentation", default="single")
    parser.add_argument("--n-people", type=int, default=250)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--mode", choices=("lora", "full"), default="lora")
    parser.add_argument("--ft-steps", type=int, default=400)
    parser.add_argument("--ft-lr", type=float, default=3e-4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    task = BioTask(BioConfig(n_people=args.n_people, augmentation=args.augmentation))
    model_config = ModelConfig(n_layers=args.layers, d_model=args.d_model, n_heads=max(1, args.d_model // 32),
                               n_ctx=256, d_vocab=task.token_table.d_vocab)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=256, lr=args.lr,
                               warmup_steps=min(200, args.steps // 10), schedule="cosine", min_lr_ratio=0.1,
                               eval_every=0, save_every=0, device=args.device)
    start = time.perf_counter()
    trainer = Trainer(model_config, task, train_config)
    trainer.train()
    print(f"pretrained in {time.perf_counter() - start:.0f} s")
    world = task.world
    memorised = bio_memorisation(trainer.model, world, n_entries=500)
    print("BIO first-token accuracy:", {a: round(100 * h.accuracy, 1) for a, h in memorised.items()})
    tuned = finetune_qa(trainer.model, world, QAFinetuneConfig(mode=args.mode, steps=args.ft_steps, lr=args.ft_lr),
                        progress=True).model
    for group, people in (("P_train", world.train_people), ("P_test", world.test_people)):
        accuracy = qa_accuracy(tuned, world, people)
        exact = {a: round(100 * r.exact.accuracy, 1) for a, r in accuracy.items()}
        print(f"{group} exact match: {exact}, mean {sum(exact.values()) / len(exact):.1f}")


if __name__ == "__main__":
    main()
