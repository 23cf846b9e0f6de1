"""iGSM (Physics of Language Models, Part 2): synthetic grade-school math with exact graphs, an evaluator that
judges solutions from text, and probe labels (spec part2_igsm.md §1-3).

Item names come from facebookresearch/iGSM (MIT licence, see ``data/LICENSE-iGSM-MIT.txt``).
"""

from physlm.tasks.igsm.config import OOD_OPS, PRESETS, IGSMConfig, ood_configs, preset
from physlm.tasks.igsm.evaluator import Verdict, evaluate_text
from physlm.tasks.igsm.export import export_dataset, export_text, features, problem_record
from physlm.tasks.igsm.generator import generate_problem, generate_problem_blind
from physlm.tasks.igsm.labels import ProblemLabels, problem_labels
from physlm.tasks.igsm.problem import Problem
from physlm.tasks.igsm.problem_parser import ParseError, parse_problem
from physlm.tasks.igsm.reask import generate_reask, reask
from physlm.tasks.igsm.task import IGSMTask
from physlm.tasks.igsm.tokenizer import decode, detokenize, encode, igsm_token_table, tokenize

__all__ = [
    "IGSMConfig",
    "IGSMTask",
    "OOD_OPS",
    "PRESETS",
    "ParseError",
    "Problem",
    "ProblemLabels",
    "Verdict",
    "decode",
    "detokenize",
    "encode",
    "evaluate_text",
    "export_dataset",
    "export_text",
    "features",
    "generate_problem",
    "generate_problem_blind",
    "generate_reask",
    "igsm_token_table",
    "ood_configs",
    "parse_problem",
    "preset",
    "problem_labels",
    "problem_record",
    "reask",
    "tokenize",
]
