"""The course kit's package: assignment release, data, and (next) grading."""
