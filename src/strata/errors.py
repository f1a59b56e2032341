"""The one exception tree of strata.

    StrataError                      root; carries a reason, an instruction and an exit code
    ├── UsageError                   bad input from the user: not retryable (exit 2)
    │   ├── ProjectNotFoundError     no strata.yml / meltano.yml above the working directory
    │   ├── ProjectFileError         the project file is malformed or invalid (file, line, key)
    │   ├── EnvironmentNotFoundError (KeyError) an unknown environment
    │   ├── PluginNotFoundError      (KeyError) an unknown plugin name
    │   ├── PluginExistsError        a plugin of that name is already defined
    │   ├── SettingError             (ValueError) an unknown or unparsable setting value
    │   ├── VariableNotSetError      (KeyError) ``${VAR}`` names an unset variable
    │   ├── DefinitionError          (ValueError) a feature graph that cannot be right
    │   ├── FeatureNotFoundError     (KeyError) an unknown feature key
    │   ├── JobNotFoundError         (KeyError) an unknown job or schedule
    │   ├── RunNotFoundError         (KeyError) no run has that id (or the prefix is ambiguous)
    │   ├── SampleNotFoundError      (KeyError) no feature on a sample's way holds it (``strata why``)
    │   ├── StateIdError             (ValueError) a state id that is empty or unsafe as a path or key
    │   ├── StateNotFoundError       (KeyError) no state is stored under that id
    │   ├── MissingExtraError        (ImportError) an optional dependency is not installed: names the extra
    │   └── WriteError               (ValueError) rows a store refuses to write
    ├── RuntimeFailure               something failed while running: may work on retry (exit 1)
    │   ├── InstallError             a plugin's virtual environment could not be built
    │   ├── PluginExecutableError    a plugin's executable is missing or could not start
    │   ├── StateBackendError        the state backend failed or cannot be reached
    │   ├── StateLockedError         another live process holds the lock on a state id
    │   ├── BuildRunningError        another live build holds the store
    │   └── SystemDatabaseError      the system database (run history) cannot be opened or used
    └── Interrupted                  a signal (Ctrl-C, SIGTERM) stopped a run (exit 128 + N)

Every error renders as one line, ``reason; instruction``; the CLI prints it and exits with
``exit_code``. Errors that match a builtin also inherit it, so ``except KeyError`` works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class StrataError(Exception):
    """Root of every error strata raises on purpose."""

    exit_code: int = 1

    def __init__(self, reason: str, instruction: str | None = None) -> None:
        self.reason = reason
        self.instruction = instruction
        super().__init__(reason)

    def __str__(self) -> str:
        if self.instruction:
            return f"{self.reason}; {self.instruction}"
        return self.reason


class UsageError(StrataError):
    """The input is wrong; retrying the same thing will fail the same way."""

    exit_code = 2


class ProjectNotFoundError(UsageError):
    """No project file was found."""


class ProjectFileError(UsageError, ValueError):
    """The project file cannot be read or does not follow the schema."""


class EnvironmentNotFoundError(UsageError, KeyError):
    """The selected environment is not defined in the project."""


class PluginNotFoundError(UsageError, KeyError):
    """No plugin of that name is defined in the project."""


class PluginExistsError(UsageError):
    """A plugin of that name is already defined."""


class SettingError(UsageError, ValueError):
    """A setting name or value is not acceptable."""


class VariableNotSetError(UsageError, KeyError):
    """A ``${VAR}`` reference names a variable that is not set anywhere."""


class DefinitionError(UsageError, ValueError):
    """A feature, field or dependency definition is invalid."""


class FeatureNotFoundError(UsageError, KeyError):
    """No feature with that key is in the graph or the store."""


class SnapshotNotFoundError(UsageError, KeyError):
    """No graph snapshot with that version was pushed to the store (or none at all)."""


class JobNotFoundError(UsageError, KeyError):
    """No job or schedule of that name is defined in the project."""


class RunNotFoundError(UsageError, KeyError):
    """No run in the history has that id, or a prefix matches several."""


class SampleNotFoundError(UsageError, KeyError):
    """No feature on a sample's way holds it: not the asked one, nor an upstream it would come from."""


class StateIdError(UsageError, ValueError):
    """A state id that is empty, too long, or holds characters unsafe in a path, key or URL."""


class StateNotFoundError(UsageError, KeyError):
    """No state is stored under that id."""


class WriteError(UsageError, ValueError):
    """Rows given to a store are missing columns, duplicated, or otherwise unfit; nothing was written."""


class MissingExtraError(UsageError, ImportError):
    """A feature needs an optional dependency (an extra of ``strata-ml``) that is not installed."""


class RuntimeFailure(StrataError):
    """Something failed while running; the same command may succeed later."""

    exit_code = 1


class InstallError(RuntimeFailure):
    """A plugin could not be installed."""


class PluginExecutableError(RuntimeFailure):
    """A plugin's executable is missing or could not be started."""


class StateBackendError(RuntimeFailure):
    """The state backend answered with an error or could not be reached."""


class StateLockedError(RuntimeFailure):
    """Another process holds the lock on a state id, or took it from this one."""


class BuildRunningError(RuntimeFailure):
    """Another live process is building in the same store."""


class SystemDatabaseError(RuntimeFailure):
    """The system database cannot be reached, migrated or written."""


class Interrupted(StrataError):
    """A signal stopped strata in the middle of a run; the exit code is ``128 + signal``, as a shell's."""

    def __init__(self, reason: str, instruction: str | None = None, signum: int = 2) -> None:
        super().__init__(reason, instruction)
        self.signum = signum
        self.exit_code = 128 + signum


class HiddenError(Exception):
    """An error whose traceback held a secret, kept as that traceback's text with the secret hidden (:func:`hiding`)."""


def hiding(exc: BaseException, hide: Callable[[str], str]) -> BaseException:
    """``exc`` to chain under a failure (``raise ... from``), as ``--debug`` may print it.

    Itself, or, when ``hide`` changes the text of its traceback (a secret in its message or in that
    of an error it came from), a :class:`HiddenError` of that text, hidden.
    """
    import traceback

    shown = "".join(traceback.format_exception(exc))
    kept = hide(shown)
    return exc if kept == shown else HiddenError("the error below, its secrets hidden:\n" + kept)


__all__ = [
    "BuildRunningError",
    "DefinitionError",
    "EnvironmentNotFoundError",
    "FeatureNotFoundError",
    "HiddenError",
    "InstallError",
    "Interrupted",
    "JobNotFoundError",
    "MissingExtraError",
    "PluginExecutableError",
    "PluginExistsError",
    "PluginNotFoundError",
    "ProjectFileError",
    "ProjectNotFoundError",
    "RunNotFoundError",
    "RuntimeFailure",
    "SettingError",
    "StateBackendError",
    "StateIdError",
    "StateLockedError",
    "StateNotFoundError",
    "StrataError",
    "SystemDatabaseError",
    "UsageError",
    "VariableNotSetError",
    "WriteError",
]
