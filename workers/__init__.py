"""Workers: the tiny policy, the synthetic task, the trainer step, the rollout engines and the
leg runner that turns one job leg into a stream of per-step metrics.

Nothing here talks HTTP or touches the database; the job loop calls :func:`workers.leg.run_leg`.
"""
