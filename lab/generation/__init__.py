"""What every generator shares: what a poster is asked to be (`Condition`) and the samples folder format
that `lab sample` writes and `lab score-samples` and reports read."""
