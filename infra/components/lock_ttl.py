"""Firestore TTL policy that deletes dead processor locks by their `expires_at`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options


@dataclass
class LockTtlArgs:
    project: str
    collection: str
    field: str = "expires_at"


class LockTtl(pulumi.ComponentResource):
    def __init__(self, name: str, args: LockTtlArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:LockTtl", name, None, opts)
        self.field = gcp.firestore.Field(
            f"{args.collection}-{args.field}-ttl",
            project=args.project,
            database="(default)",
            collection=args.collection,
            field=args.field,
            ttl_config={},  # empty: TTL on
            index_config={},  # empty: no single-field indexes on a field nobody queries
            opts=child_options(self, opts),
        )
        self.register_outputs({"field": self.field.name})
