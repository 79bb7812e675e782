"""Stage 9, evaluation: how well a steering method works, in one place that `steer run`,
`steer sweep`, `steer eval` (and the random controls) share.

    prompting.py          the prompting side: each prompt with an instruction added
    judge.py              generated continuations read by the unsteered model (NLL, probes,
    instruction_judge.py  classifiers, a judge model's P(Yes))
    text_metrics.py       the metrics on generated text (concept, fluency, repetition,
                          instruction), from what judge.py read
    sides.py              a run's passes with the prompting side and the judging, measured
    controls.py           random-vector controls (report.controls)
    table.py              the evaluation table: methods side by side, the strength of each
                          chosen on tuning prompts, the aggregate score
    table_output.py       the table as text, JSON, CSV, markdown and a figure
    expectations.py       a recipe's `expect:` claims checked against its run's report (steer test)

Placement: after execute/ and report/ (and before pipeline.py, which drives it). This stage
runs passes through execute/ and measures them with report/build.py, passing it the text
measures; neither execute/ nor report/ imports this stage (execute/passes.RunPasses.judged is
filled here). The table re-runs a recipe with overrides through a runner the API hands it
(pipeline.py comes after this stage).
"""
