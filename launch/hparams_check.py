#!/usr/bin/env python3
"""Reads a launch folder (a study or a comparison) with TensorBoard's own HParams plugin, as its dashboard does,
and prints the experiment's hyperparameters and metrics and every session group as JSON.
    python3 launch/hparams_check.py runs/study-smoke
Needs the tensorboard package (not part of the suite's requirements; the suite skips its check without it)."""
import json
import sys

from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, get_experiment, hparams_plugin, list_session_groups
from tensorboard.plugins.scalar import scalars_plugin  # noqa: F401  (registers the scalars the metrics come from)
from google.protobuf import json_format


def main(logdir):
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    plugin = hparams_plugin.HParamsPlugin(base_plugin.TBContext(logdir=logdir, multiplexer=mux, data_provider=provider))
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, plugin._context, "", api_pb2.GetExperimentRequest()).run()
    # As the dashboard asks: every status, every column.
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10000, aggregation_type=api_pb2.AGGREGATION_AVG,
        allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    for h in experiment.hparam_infos:
        request.col_params.add(hparam=h.name)
    for m in experiment.metric_infos:
        request.col_params.add(metric=m.name)
    groups = list_session_groups.Handler(ctx, plugin._context, "", request).run()
    print(json.dumps({
        "hparams": [h.name for h in experiment.hparam_infos],
        "metrics": [m.name.tag for m in experiment.metric_infos],
        "description": experiment.description,
        "session_groups": json_format.MessageToDict(groups).get("sessionGroups", []),
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
