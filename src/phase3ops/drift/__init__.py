"""Deployment drift: what `pulumi preview --refresh` says differs, and why."""
