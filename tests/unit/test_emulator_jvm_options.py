"""The emulators' JVMs run with the client compiler only, unless the user chose JVM options."""

from __future__ import annotations

from phase3ops.emulators import JVM_OPTIONS, JVM_OPTIONS_ENV, emulator_environment


def test_the_emulators_get_the_cheaper_jit_by_default():
    env = emulator_environment({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", JVM_OPTIONS_ENV: JVM_OPTIONS}
    assert "-XX:TieredStopAtLevel=1" in JVM_OPTIONS


def test_jvm_options_of_the_users_own_are_left_alone():
    assert emulator_environment({"JAVA_TOOL_OPTIONS": "-Xmx2g"}) == {"JAVA_TOOL_OPTIONS": "-Xmx2g"}
    assert emulator_environment({JVM_OPTIONS_ENV: "-Xmx1g"}) == {JVM_OPTIONS_ENV: "-Xmx1g"}
