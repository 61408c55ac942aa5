"""ComponentResources of the infra program, one module per part of the system."""

from __future__ import annotations

import pulumi


def child_options(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, *depends_on: pulumi.Resource, **options
) -> pulumi.ResourceOptions:
    """Options for a component's child: parented to it, and waiting for what the component
    waits for. Pulumi does not hand a component's depends_on down to its children, so a
    child would otherwise be created before, say, the API it needs is enabled."""
    inherited = opts.depends_on if opts is not None and opts.depends_on is not None else []
    if not isinstance(inherited, (list, tuple)):
        inherited = [inherited]
    return pulumi.ResourceOptions(parent=parent, depends_on=[*inherited, *depends_on], **options)
