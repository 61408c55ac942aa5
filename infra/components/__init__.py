"""ComponentResources of the infra program, one module per part of the system."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pulumi


def child_options(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, *depends_on: pulumi.Resource, **options
) -> pulumi.ResourceOptions:
    """Options for a component's child: parented to it, and waiting for what the component
    waits for. Pulumi does not hand a component's depends_on down to its children, so a
    child would otherwise be created before, say, the API it needs is enabled."""
    given = opts.depends_on if opts is not None and opts.depends_on is not None else []
    # The program hands components resources, never an Output or awaitable of a list of them.
    inherited: Sequence[pulumi.Input[pulumi.Resource]] = (
        given if isinstance(given, (list, tuple)) else [cast(pulumi.Input[pulumi.Resource], given)]
    )
    return pulumi.ResourceOptions(parent=parent, depends_on=[*inherited, *depends_on], **options)
