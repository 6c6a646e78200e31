"""The stack search of 07_stack_search: find the fastest stack per language that keeps quality.

Modules: ``candidates`` (the search space and the best stack file), ``screen``
(every STT option alone, WER and the quality budget), ``halving`` (successive
halving of whole stacks on voice-to-voice time to first audio), ``summary``
(levers, Pareto figure, winner, confirmation run, goal sentences).
"""
