"""Master plan, indicators, goals, scenarios and investment appraisal."""
