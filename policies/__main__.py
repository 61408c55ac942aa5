"""Builds the pack, nothing else: PolicyPack starts the analyzer server and blocks.

Used by `pulumi preview --policy-pack policies` and `pulumi up --policy-pack policies`.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import PACK_NAME, build_policies  # type: ignore[import-not-found]  # the analyzer runs this from policies/, where rules is top-level

PolicyPack(name=PACK_NAME, policies=build_policies(), enforcement_level=EnforcementLevel.MANDATORY)
