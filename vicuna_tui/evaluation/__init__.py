"""Evaluating models the way Vicuna was evaluated (FastChat's llm_judge formats).

``answers`` reads and writes model-answer JSONL, ``temperatures`` picks each
category's sampling temperature, ``judge_prompts`` loads the judge's prompts,
``verdicts`` reads a verdict out of the judge's reply, ``judgments`` plans the matches
and keeps the judgment JSONL, and ``results`` turns judgments into tables.  Nothing
here loads a model or draws a screen.
"""
