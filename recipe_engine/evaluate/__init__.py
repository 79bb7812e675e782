"""Stage: evaluation of a run, after report/.

expectations.py   a recipe's `expect:` claims checked against its run's report (steer test)
"""
