"""pretrain-mlm: a BERT encoder from scratch with the masked-language-model objective."""

from __future__ import annotations

from lmpipe import runtime
from lmpipe.engine import checkpoint, distributed
from lmpipe.engine.loop import train
from lmpipe.engine.objectives import MaskedLM
from lmpipe.modeling import build_masked_lm, count_parameters, save_model
from lmpipe.params import to_dict
from lmpipe.tokenization import load_tokenizer, read_blocks
from lmpipe.tracking import Tracker

TOKENIZER, TOKENIZED, OUT, REPORTS = "data/tokenizer", "data/tokenized", "models/pretrained", "reports/pretrain"


def main() -> None:
    params = runtime.start("pretrain-mlm")
    info = distributed.setup()
    cfg = params.pretrain
    logged = {"seed": params.seed, "model": to_dict(params.model), "pretrain": to_dict(cfg)}
    with Tracker("pretrain-mlm", logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker:
        tokenizer = load_tokenizer(TOKENIZER)
        model = build_masked_lm(params.model, tokenizer)
        objective = MaskedLM(
            model, read_blocks(f"{TOKENIZED}/mlm_train.parquet"), read_blocks(f"{TOKENIZED}/mlm_heldout.parquet"),
            mask_rate=cfg.mask_rate, mask_token_fraction=cfg.mask_token_fraction,
            random_token_fraction=cfg.random_token_fraction, mask_token_id=tokenizer.mask_token_id,
            special_token_ids=tokenizer.all_special_ids, vocab_size=len(tokenizer), eval_seed=params.seed)
        fingerprint = checkpoint.fingerprint("pretrain-mlm", logged, [TOKENIZER, TOKENIZED])
        result = train(objective, cfg.train, lr=cfg.train.lr, seed=params.seed, dist_info=info, tracker=tracker,
                       checkpoint_dir=runtime.checkpoint_dir("pretrain-mlm", fingerprint), desc="pretrain-mlm")
        if info.is_main:
            save_model(model, tokenizer, OUT)
            final = {f"heldout_{k}": v for k, v in result.evals[-1].items() if k not in ("step", "epoch")}
            metrics = {**final, **result.summary, "parameters": count_parameters(model)[1]}
            runtime.write_training_reports(REPORTS, metrics, result, tracker)
    distributed.teardown()


if __name__ == "__main__":
    main()
