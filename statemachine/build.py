#!/usr/bin/env python3
"""Writes the state machines from one description, so what is
shared is written once: the Retry policies, the step states of a unit
(Sync, Build, Tar, Upload differ only in name, timeout and heartbeat), the
Catch that sends every failure to Release.

    statemachine/build.py           write pipeline, platform, unit and bake .asl.json
    statemachine/build.py --check   fail if a written file differs (CI)

- pipeline.asl.json: one run. Plan, then per platform (a Map; one
  platform's trouble never stops the others) one task that starts the
  platform's first execution with its task token
  (`states:startExecution.waitForTaskToken`) and waits for the platform's
  summary, however many executions the platform takes; the platform's
  scheduler beats on it every tick. Release of the platform when it fails.
  Then the run's summary is stored (the release Lambda; a failure there
  is caught: the output stays the summary, with `summary_failure`).
- platform.asl.json: one platform of a run. Capacity (its pool, once),
  then Schedule and Wait for nodes in a loop until nothing is left, then
  Release and the summary to the run. A unit ending wakes the wait (a task
  token); it times out after TICK_SECONDS anyway, so the scheduler sees
  time pass. After its scheduler's set number of ticks an execution starts
  the next one of the same platform (`-g<n+1>`, the same pool and run
  token) and ends: every history stays bounded, however large the plan.
- unit.asl.json: one module on one node: Capacity (the node is there),
  Lease, Sync, Build, Tar, Upload (each completed by the node's callback),
  Record, Release (its outcome, and the scheduler woken).
- bake.asl.json: the node images that are due, each in a Map iteration:
  Launch, a Wait/poll loop until the bake instance stopped itself, Create
  image, a Wait/poll loop until it is available, Record, Clean up; every
  failure after Launch goes through "Clean up after failure" (the instance
  terminated, an unrecorded image deregistered) and ends its iteration
  without failing the Map, so no other bake is aborted before its clean-up.

Function ARNs and settings are SAM DefinitionSubstitutions
(infra/template.yaml). JSONPath only: the local ASL interpreter runs it.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Most seconds between two ticks of a platform's scheduler.
TICK_SECONDS = 300

# The Record Lambda's states (Lease, Record, Release): above the function's
# 600 s, which Record needs to hash a staged tarball of tens of GB.
RECORD_TIMEOUT = 660

LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]

# Lambda's own hiccups and a handler's "not now" (throttling, limits).
RETRY_TRANSIENT = {
    "ErrorEquals": LAMBDA_ERRORS + ["ebfleet.Transient"],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}

# Step Functions' own hiccups starting a child execution or answering a task.
RETRY_STATES = {
    "ErrorEquals": ["StepFunctions.ExecutionLimitExceededException", "StepFunctions.SfnException"],
    "IntervalSeconds": 10,
    "MaxAttempts": 3,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}


def catch(next_state, result_path="$.failure"):
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}]


def function(name):
    return "${" + name + "FunctionArn}"


def lambda_task(comment, function_name, parameters, next_state=None, *, result_path=None,
                result_selector=None, timeout=300, retry=None, catch_to="Release", end=False):
    """A Lambda task with the shared Retry and a Catch to `catch_to`."""
    s = {
        "Type": "Task",
        "Comment": comment,
        "Resource": function(function_name),
    }
    if parameters is None:
        s["InputPath"] = "$.request"
    else:
        s["Parameters"] = parameters
    if result_selector:
        s["ResultSelector"] = result_selector
    s["ResultPath"] = result_path
    s["TimeoutSeconds"] = timeout
    s["Retry"] = retry or [RETRY_TRANSIENT]
    if catch_to:
        s["Catch"] = catch(catch_to)
    if end:
        s["End"] = True
    else:
        s["Next"] = next_state
    return s


# ------------------------------------------------------------------ unit

# The steps a node runs for a unit: (state, step, timeout, heartbeat). Sync
# waits for the node's first-boot bootstrap before the agent runs (and
# beats), hence its longer heartbeat; the others beat every minute.
STEPS = [
    ("Sync", "sync", 2 * 3600, 2400),
    ("Build", "build", 24 * 3600, 900),
    ("Tar", "tar", 2 * 3600, 900),
    ("Upload", "upload", 3 * 3600, 900),
]


def step_state(name, step, timeout, heartbeat, next_state):
    return {
        "Type": "Task",
        "Comment": f"`ebfleet-node {step}` on the unit's node through SSM Run Command; the node "
        "completes this task when the step ends (or SSM's status-change event does, when the "
        "node cannot) and beats while it runs.",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": function("Dispatch"),
            "Payload": {
                "step": step,
                "batch_key.$": "$.unit_key",
                "instance_id.$": "$.instance_id",
                "task_token.$": "$$.Task.Token",
            },
        },
        "ResultPath": None,
        "TimeoutSeconds": timeout,
        "HeartbeatSeconds": heartbeat,
        "Retry": [RETRY_TRANSIENT],
        "Catch": catch("Release"),
        "Next": next_state,
    }


def unit():
    states = {
        "Unit": {
            "Type": "Pass",
            "Comment": "What the later states fill in starts empty, so Release can read it on every path.",
            "Parameters": {
                "execution.$": "$.execution",
                "platform.$": "$.platform",
                "unit.$": "$.unit",
                "attempt.$": "$.attempt",
                "module.$": "$.module",
                "unit_key.$": "$.unit_key",
                "instance_id.$": "$.instance_id",
                "lease": None,
                "recorded": None,
                "failure": None,
            },
            "Next": "Capacity",
        },
        "Capacity": lambda_task(
            "The node the scheduler chose is still there and online in SSM.",
            "Capacity",
            {"claim": {"instance_id.$": "$.instance_id"}},
            "Lease",
            timeout=180,
        ),
        "Lease": lambda_task(
            "Take the module's lease (short; the scheduler renews it while this runs). Held by "
            "another execution, or built by one since the plan: nothing to do here.",
            "Record",
            {
                "lease": {
                    "execution.$": "$.execution",
                    "platform.$": "$.platform",
                    "batch.$": "$.unit",
                    "waits_left": 0,
                }
            },
            "Leased?",
            result_path="$.lease",
            timeout=RECORD_TIMEOUT,
        ),
        "Leased?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lease.leased", "NumericGreaterThan": 0, "Next": "Sync"}],
            "Default": "Release",
        },
    }
    for (name, step, timeout, heartbeat), nxt in zip(STEPS, [s[0] for s in STEPS[1:]] + ["Record"]):
        states[name] = step_state(name, step, timeout, heartbeat, nxt)
    states["Record"] = lambda_task(
        "Read the manifest the unit's node staged, verify and promote what it built, and write "
        "its module's record.",
        "Record",
        {
            "staged": {
                "execution.$": "$.execution",
                "platform.$": "$.platform",
                "batch.$": "$.unit",
            }
        },
        "Release",
        result_path="$.recorded",
        timeout=RECORD_TIMEOUT,
    )
    states["Release"] = lambda_task(
        "What the unit came to (its output), and its platform's scheduler woken.",
        "Record",
        {
            "done": {
                "execution.$": "$.execution",
                "platform.$": "$.platform",
                "unit.$": "$.unit",
                "attempt.$": "$.attempt",
                "lease.$": "$.lease",
                "recorded.$": "$.recorded",
                "failure.$": "$.failure",
            }
        },
        result_path=None,
        timeout=RECORD_TIMEOUT,
        retry=[dict(RETRY_TRANSIENT, MaxAttempts=10)],
        catch_to=None,
        end=True,
    )
    del states["Release"]["ResultPath"]
    return {
        "Comment": "ebfleet: one module on one node — Capacity, Lease, Sync, Build, Tar, Upload, "
        "Record, Release. Started by its platform's scheduler; its output is the unit's outcome.",
        "StartAt": "Unit",
        "TimeoutSeconds": 36 * 3600,
        "States": states,
    }


# -------------------------------------------------------------- platform


def platform():
    return {
        "Comment": "ebfleet: one platform of a run — its pool (Capacity), the scheduler's loop "
        "(Schedule, Wait for nodes) and Release, then its summary to the run (the run's task token). "
        "After a set number of ticks it goes on in a new execution of itself, so no history grows "
        "with the plan.",
        "StartAt": "New pool?",
        "TimeoutSeconds": 14 * 24 * 3600,
        "States": {
            "New pool?": {
                "Type": "Choice",
                "Comment": "The first execution of a platform makes its pool; the next ones go on with it.",
                "Choices": [{"Variable": "$.pool", "IsNull": True, "Next": "Capacity"}],
                "Default": "Schedule",
            },
            "Capacity": lambda_task(
                "The platform's pool: its launch template and an empty Auto Scaling group of its "
                "instance types (spot, price-capacity-optimized).",
                "Capacity",
                {"pool": {"execution.$": "$.execution", "platform.$": "$.platform"}},
                "Schedule",
                result_path="$.pool",
                result_selector={
                    "name.$": "$.pool.name",
                    "launch_template_id.$": "$.pool.launch_template_id",
                    "instance_types.$": "$.pool.instance_types",
                    "subnet_ids.$": "$.pool.subnet_ids",
                    "max_size.$": "$.pool.max_size",
                    "tags.$": "$.pool.tags",
                    "on_demand.$": "$.pool.on_demand",
                },
                timeout=300,
            ),
            "Schedule": lambda_task(
                "Observe the pool and the units, dispatch what is ready, grow or shrink the pool.",
                "Schedule",
                {
                    "tick": {
                        "execution.$": "$.execution",
                        "platform.$": "$.platform",
                        "graph_key.$": "$.graph_key",
                        "name_prefix.$": "$.name_prefix",
                        "pool.$": "$.pool",
                        "run_token.$": "$.run_token",
                    }
                },
                "What next?",
                result_path="$.tick",
                timeout=600,
            ),
            "What next?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.tick.done", "BooleanEquals": True, "Next": "Release"},
                    # The run stopped waiting for this platform (stopped, or
                    # gave up on it): release and end.
                    {"Variable": "$.tick.orphaned", "BooleanEquals": True, "Next": "Release"},
                    {"Variable": "$.tick.next_execution", "BooleanEquals": True, "Next": "Go on in a new execution"},
                ],
                "Default": "Wait for nodes",
            },
            "Wait for nodes": {
                "Type": "Task",
                "Comment": f"Until a unit ends (it completes this task), at most {TICK_SECONDS} s.",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": function("Schedule"),
                    "Payload": {
                        "wait": {
                            "execution.$": "$.execution",
                            "platform.$": "$.platform",
                            "seen.$": "$.tick.seen",
                            "task_token.$": "$$.Task.Token",
                        }
                    },
                },
                "ResultPath": None,
                "TimeoutSeconds": TICK_SECONDS,
                "Retry": [RETRY_TRANSIENT],
                # A timeout is the loop's clock; any other failure: tick anyway.
                "Catch": catch("Schedule", None),
                "Next": "Schedule",
            },
            "Go on in a new execution": {
                "Type": "Task",
                "Comment": "This platform's next execution goes on with the same pool and reports to the run "
                "in this one's stead; this one ends, its history bounded.",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {
                    "StateMachineArn.$": "$$.StateMachine.Id",
                    "Name.$": "States.Format('{}-g{}', $.name_prefix, States.MathAdd($.generation, 1))",
                    "Input": {
                        "execution.$": "$.execution",
                        "platform.$": "$.platform",
                        "graph_key.$": "$.graph_key",
                        "name_prefix.$": "$.name_prefix",
                        "generation.$": "States.MathAdd($.generation, 1)",
                        "pool.$": "$.pool",
                        "run_token.$": "$.run_token",
                        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                    },
                },
                "ResultPath": None,
                "TimeoutSeconds": 60,
                "Retry": [RETRY_STATES],
                "Catch": catch("Release"),
                "End": True,
            },
            "Release": lambda_task(
                "Delete the pool and terminate its instances — on every path.",
                "Release",
                {"execution.$": "$.execution", "platform.$": "$.platform"},
                "Failed?",
                result_path="$.released",
                timeout=330,
                retry=[dict(RETRY_TRANSIENT, MaxAttempts=10)],
                catch_to="Not released",
            ),
            "Not released": {
                "Type": "Fail",
                "Error": "ebfleet.NotReleased",
                "Cause": "Release failed after its retries: the run's failure rule releases the "
                "execution's instances (see the execution history for the error).",
            },
            "Failed?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.failure", "IsPresent": True, "Next": "Report the failure to the run"}],
                "Default": "Report to the run",
            },
            "Report the failure to the run": {
                "Type": "Task",
                "Comment": "The run's task for this platform fails with what went wrong here.",
                "Resource": "arn:aws:states:::aws-sdk:sfn:sendTaskFailure",
                "Parameters": {
                    "TaskToken.$": "$.run_token",
                    "Error": "ebfleet.PlatformFailed",
                    "Cause.$": "States.JsonToString($.failure)",
                },
                "ResultPath": None,
                "TimeoutSeconds": 60,
                "Retry": [RETRY_STATES],
                # The run stopped waiting (stopped, timed out): nothing to tell.
                "Catch": catch("Platform failed", None),
                "Next": "Platform failed",
            },
            "Platform failed": {
                "Type": "Fail",
                "Error": "ebfleet.PlatformFailed",
                "Cause": "A state of the platform failed after its retries; its pool was released "
                "(see the execution history for the error).",
            },
            "Report to the run": {
                "Type": "Task",
                "Comment": "The run's task for this platform succeeds with the platform's summary.",
                "Resource": "arn:aws:states:::aws-sdk:sfn:sendTaskSuccess",
                "Parameters": {
                    "TaskToken.$": "$.run_token",
                    "Output": {
                        "platform.$": "$.platform",
                        "units.$": "$.tick.units",
                        "nodes_max.$": "$.tick.nodes_max",
                        "instances_launched.$": "$.tick.instances_launched",
                        "node_seconds.$": "$.tick.node_seconds",
                        "cost.$": "$.tick.cost",
                        "released.$": "$.released",
                    },
                },
                "ResultPath": None,
                "TimeoutSeconds": 60,
                "Retry": [RETRY_STATES],
                "Catch": catch("Reported", None),
                "Next": "Reported",
            },
            "Reported": {"Type": "Succeed"},
        },
    }


# -------------------------------------------------------------- pipeline


def platform_states(kind, *, layer=False, then=None):
    """The states of one platform's iteration: build it unless it is up to
    date; a failed one is released and reported, so an iteration never
    fails and one platform's trouble never stops the others. State names
    are unique in a state machine: `kind` names this iteration's. With
    `layer` (a CUDA overlay), it first lays its graph over its base's
    records (the Schedule Lambda's `layer`), which says what is left to
    build. With `then`, its result goes to `$.result` and the iteration
    goes on there; else the result is the iteration's output."""
    build, release, failed = f"Build {kind}", f"Release {kind}", f"{kind.capitalize()} failed"
    anything, up_to_date = f"Anything for the {kind}?", f"{kind.capitalize()} up to date"

    def ends(state):
        if then:
            return {**state, "ResultPath": "$.result", "Next": then}
        return {**state, "End": True}

    first = {}
    to_build = "$.to_build"
    if layer:
        first = {
            "Layer over the base": lambda_task(
                "Lay the overlay's graph over what its base built: its needs take the base's "
                "recorded tarballs; what needs a module the base did not build is held and "
                "recorded skipped, with why, before any node starts.",
                "Schedule",
                {"layer": {
                    "execution.$": "$.execution",
                    "platform.$": "$.platform",
                    "graph_key.$": "$.graph_key",
                }},
                anything,
                result_path="$.layered",
                timeout=330,
                catch_to=release,
            ),
        }
        to_build = "$.layered.to_build"
    states = {
        **first,
        anything: {
            "Type": "Choice",
            "Comment": "A platform whose modules are all built starts nothing.",
            "Choices": [{"Variable": to_build, "NumericGreaterThan": 0, "Next": build}],
            "Default": up_to_date,
        },
        up_to_date: ends({
            "Type": "Pass",
            "Parameters": {"platform.$": "$.platform", "up_to_date": True},
        }),
        build: ends({
            "Type": "Task",
            "Comment": "The platform's executions (platform.asl.json): the first starts here with this "
            "task's token; each hands it on to the next; the last reports the platform's summary. "
            "Its scheduler beats on every tick.",
            "Resource": "arn:aws:states:::states:startExecution.waitForTaskToken",
            "Parameters": {
                "StateMachineArn": "${PlatformStateMachineArn}",
                "Name.$": "States.Format('{}-g0', $.name_prefix)",
                "Input": {
                    "execution.$": "$.execution",
                    "platform.$": "$.platform",
                    "graph_key.$": "$.graph_key",
                    "name_prefix.$": "$.name_prefix",
                    "generation": 0,
                    "pool": None,
                    "run_token.$": "$$.Task.Token",
                    "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                },
            },
            "TimeoutSeconds": 30 * 24 * 3600,
            "HeartbeatSeconds": 1800,
            "Retry": [RETRY_STATES],
            "Catch": catch(release),
        }),
        release: lambda_task(
            "The platform failed, or stopped beating: make sure its pool is gone.",
            "Release",
            {"execution.$": "$.execution", "platform.$": "$.platform"},
            failed,
            result_path="$.released",
            timeout=330,
            retry=[dict(RETRY_TRANSIENT, MaxAttempts=10)],
            catch_to=failed,
        ),
        failed: ends({
            "Type": "Pass",
            "Parameters": {
                "platform.$": "$.platform",
                "failed": True,
                "error.$": "$.failure.Error",
                "cause.$": "$.failure.Cause",
            },
        }),
    }
    return next(iter(states)), states


def item_selector(execution, *extra):
    """A platform's fields of the Map's item, and the run's name."""
    fields = ("platform", "graph_key", "name_prefix", "to_build") + extra
    return {"execution.$": execution, **{f"{f}.$": f"$$.Map.Item.Value.{f}" for f in fields}}


def platforms_map():
    """Every platform, and after each its CUDA overlays (each layered over
    what the platform built): an overlay waits for its own base only."""
    start, states = platform_states("platform", then="Overlays")
    overlay_start, overlay_states = platform_states("overlay", layer=True)
    return {
        "Type": "Map",
        "Comment": "One iteration per platform with something to build or overlays over it: the "
        "platform, then its CUDA overlays side by side; an iteration never fails (a failed "
        "platform is released and reported), so one platform's trouble never stops the others.",
        "ItemsPath": "$.plan.platforms",
        "MaxConcurrencyPath": "$.settings.map_concurrency",
        "ItemSelector": item_selector("$.plan.execution", "overlays"),
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": start,
            "States": {
                **states,
                "Overlays": {
                    "Type": "Map",
                    "Comment": "The CUDA overlays over this platform, once it has ended: each builds "
                    "only what holds CUDA, over what the platform built.",
                    "ItemsPath": "$.overlays",
                    "ItemSelector": item_selector("$.execution"),
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": overlay_start,
                        "States": overlay_states,
                    },
                    "ResultSelector": {"overlays.$": "$"},
                    "ResultPath": "$.overlay_results",
                    "Next": "The platform and its overlays",
                },
                "The platform and its overlays": {
                    "Type": "Pass",
                    "Parameters": {"merged.$": "States.JsonMerge($.result, $.overlay_results, false)"},
                    "OutputPath": "$.merged",
                    "End": True,
                },
            },
        },
        "ResultPath": "$.platforms",
        "Catch": catch("Release every platform"),
        "Next": "Summarise",
    }


def pipeline():
    return {
        "Comment": "ebfleet: one run — Plan, then every platform in its own executions "
        "(platform.asl.json, whose units run in unit.asl.json), then a summary. Function ARNs and "
        "settings are SAM DefinitionSubstitutions (infra/template.yaml).",
        "StartAt": "Name the run",
        "TimeoutSeconds": 30 * 24 * 3600,
        "States": {
            "Name the run": {
                "Type": "Pass",
                "Comment": "The execution's name is the run's name (tags, keys, records), whatever the input says.",
                "Parameters": {"execution.$": "$$.Execution.Name"},
                "ResultPath": "$.run",
                "Next": "Settings",
            },
            "Settings": {
                "Type": "Pass",
                "Parameters": {
                    "request.$": "States.JsonMerge($, $.run, false)",
                    "settings": {"map_concurrency.$": "States.StringToJson('${MapConcurrency}')"},
                },
                "Next": "Plan",
            },
            "Plan": lambda_task(
                "Plan what each platform builds; the plan and each platform's build graph go to "
                "S3, only keys and counts come back.",
                "Plan",
                None,
                "Anything to build?",
                result_path="$.plan",
                timeout=960,
                retry=[RETRY_TRANSIENT, {
                    "ErrorEquals": ["States.TaskFailed"],
                    "IntervalSeconds": 5,
                    "MaxAttempts": 2,
                    "BackoffRate": 3,
                    "JitterStrategy": "FULL",
                }],
                catch_to="Plan failed",
            ),
            "Plan failed": {
                "Type": "Fail",
                "Error": "ebfleet.PlanFailed",
                "Cause": "The Plan task failed before any instance was started; see its error in the execution history.",
            },
            "Anything to build?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.plan.nothing_to_do", "BooleanEquals": True, "Next": "Nothing to build"}],
                "Default": "Platforms",
            },
            "Nothing to build": {
                "Type": "Pass",
                "Comment": "Every platform is up to date: no instance is started.",
                "Parameters": {
                    "execution.$": "$.plan.execution",
                    "plan_key.$": "$.plan.plan_key",
                    "nothing_to_do": True,
                    "platforms": [],
                },
                "Next": "Store the summary",
            },
            "Platforms": platforms_map(),
            "Release every platform": lambda_task(
                "Something failed outside the platforms: release every pool of the run.",
                "Release",
                {"execution.$": "$.plan.execution"},
                "Pipeline failed",
                result_path="$.released",
                timeout=330,
                retry=[dict(RETRY_TRANSIENT, MaxAttempts=10)],
                catch_to="Pipeline failed",
            ),
            "Pipeline failed": {
                "Type": "Fail",
                "Error": "ebfleet.PipelineFailed",
                "Cause": "The run failed outside a platform; every pool of it was released (see the history).",
            },
            "Summarise": {
                "Type": "Pass",
                "Parameters": {
                    "execution.$": "$.plan.execution",
                    "plan_key.$": "$.plan.plan_key",
                    "nothing_to_do": False,
                    "platforms.$": "$.platforms",
                },
                "Next": "Store the summary",
            },
            "Store the summary": {
                **lambda_task(
                    "The run's summary (per platform: units, instance hours, dollars) as "
                    "plans/<execution>/summary.json and the RUN#<execution> item. Bookkeeping: "
                    "its failure is caught and the run ends as it would have, with the summary "
                    "in its output.",
                    "Release",
                    {"summary.$": "$"},
                    "Done",
                    result_path="$.stored",
                    timeout=330,
                    catch_to=None,
                ),
                "Catch": catch("Done", "$.summary_failure"),
            },
            "Done": {"Type": "Succeed"},
        },
    }


# ------------------------------------------------------------------ bake

# Seconds between two looks at a bake instance (its bootstrap takes minutes)
# and at its image (a few minutes for a 30 GiB snapshot).
BOOTSTRAP_POLL_SECONDS = 120
IMAGE_POLL_SECONDS = 60


def bake_task(comment, action, next_state, *, catch_to="Clean up after failure", result_path="$"):
    return lambda_task(comment, "Bake", {f"{action}.$": "$"}, next_state, result_path=result_path,
                       timeout=120, catch_to=catch_to)


def bake():
    image = {
        "StartAt": "Launch",
        "States": {
            "Launch": lambda_task(
                "Boot the stock AMI of the image's OS and architecture with the bake script "
                "(bootstrap.sh, then power-off only when it succeeded).",
                "Bake",
                {"launch.$": "$"},
                "Wait for the bootstrap",
                result_path="$",
                timeout=120,
                catch_to="Not baked",
            ),
            "Wait for the bootstrap": {"Type": "Wait", "Seconds": BOOTSTRAP_POLL_SECONDS,
                                       "Next": "Bootstrapped"},
            "Bootstrapped": bake_task(
                "Has the instance stopped itself? Gone, or running past the bake's deadline: failed.",
                "bootstrapped", "Stopped?"),
            "Stopped?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ready", "BooleanEquals": True, "Next": "Create image"}],
                "Default": "Wait for the bootstrap",
            },
            "Create image": bake_task(
                "CreateImage of the stopped instance, tagged with the bootstrap's sha256, OS and kind.",
                "create_image", "Wait for the image"),
            "Wait for the image": {"Type": "Wait", "Seconds": IMAGE_POLL_SECONDS, "Next": "Image ready"},
            "Image ready": bake_task("Is the image available? Failed, or pending past the deadline: failed.",
                                     "image_ready", "Available?"),
            "Available?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ready", "BooleanEquals": True, "Next": "Record"}],
                "Default": "Wait for the image",
            },
            "Record": bake_task(
                "Check the image as Capacity does (architecture first) and write its id to the stack's "
                "node-image parameter; deregister the target's images past their use.",
                "record", "Clean up"),
            "Clean up": lambda_task(
                "Terminate the bake instance.",
                "Bake",
                {"clean_up.$": "$"},
                None,
                result_path="$",
                timeout=120,
                catch_to="Not baked",
                end=True,
            ),
            "Clean up after failure": lambda_task(
                "Terminate the bake instance, and deregister an image the bake made but did not record.",
                "Bake",
                {"clean_up.$": "$"},
                "Not baked",
                result_path=None,
                timeout=120,
                retry=[dict(RETRY_TRANSIENT, MaxAttempts=10)],
                catch_to="Not baked",
            ),
            "Not baked": {
                "Type": "Pass",
                "Comment": "The iteration ends without failing the Map, whose other bakes must reach "
                "their own clean-up; Summary fails the execution.",
                "Parameters": {"failed": True, "error.$": "$.failure.Error", "cause.$": "$.failure.Cause"},
                "End": True,
            },
        },
    }
    # The default ResultPath ("$": the Lambda's answer is the state's output)
    # is left out: the local interpreter reads an explicit "$" as a key.
    for state in image["States"].values():
        if state.get("ResultPath") == "$":
            del state["ResultPath"]
    return {
        "Comment": "ebfleet: bake the node images that are due (bake.asl.json, written by "
        "statemachine/build.py) — per image: boot the stock AMI with bootstrap.sh, wait until the "
        "instance stopped itself, CreateImage, record it in SSM Parameter Store; the instance is "
        "terminated on every path. Function ARNs are SAM DefinitionSubstitutions.",
        "StartAt": "Due",
        "States": {
            "Due": lambda_task(
                "Which images to bake: none recorded, another bootstrap, older than six days, or "
                "all of them with {\"force\": true}. Also terminates bake instances a lost run left.",
                "Bake",
                {"due.$": "$"},
                "Bake each image",
                result_path="$.due",
                timeout=120,
                catch_to="Bake failed",
            ),
            "Bake each image": {
                "Type": "Map",
                "ItemsPath": "$.due.bakes",
                "MaxConcurrency": 4,
                "Iterator": image,
                "ResultPath": "$.results",
                "Catch": catch("Bake failed"),
                "Next": "Summary",
            },
            "Summary": lambda_task(
                "Fail the execution when an image was not baked (each bake cleaned up after itself).",
                "Bake",
                {"summary.$": "$.results"},
                "Done",
                result_path="$.summary",
                timeout=120,
                catch_to="Bake failed",
            ),
            "Done": {"Type": "Succeed"},
            "Bake failed": {"Type": "Fail", "Error": "ebfleet.BakeFailed",
                            "Cause": "a node image was not baked: see the execution's history"},
        },
    }


def render(definition):
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, make in (("pipeline", pipeline), ("platform", platform), ("unit", unit), ("bake", bake)):
        path = HERE / f"{name}.asl.json"
        text = render(make())
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"statemachine/build.py: {', '.join(stale)} differ from what build.py writes: run it and commit")


if __name__ == "__main__":
    main()
