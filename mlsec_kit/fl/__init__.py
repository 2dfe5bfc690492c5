"""Federated learning from scratch: partitions, FedAvg clients and loop, aggregation rules (mean, median, trimmed
mean, Krum), model-poisoning clients, secure aggregation with dropouts (Bonawitz et al. 2017), DP-FedAvg
(McMahan et al. 2018), and the link to chapter 9's gradient leakage."""
from .aggregation import METHODS, aggregate, flatten_update, krum_scores, krum_select, unflatten_update
from .client import ATTACKS, Client, ClientUpdate, ModelPoisoning, backdoor_client, replacement_scale
from .fedavg import DPFedAvg, FLHistory, client_seed, clip_update, fedavg, sample_clients, set_flat_params
from .leakage import update_to_gradients
from .partition import dirichlet_partition, iid_partition
from .secure_aggregation import (PRIME, RING_BITS, SecureAggregate, decode_fixed, encode_fixed, secure_aggregate,
                                 shamir_reconstruct, shamir_share)

__all__ = ["METHODS", "aggregate", "flatten_update", "krum_scores", "krum_select", "unflatten_update", "ATTACKS",
           "Client", "ClientUpdate", "ModelPoisoning", "backdoor_client", "replacement_scale", "DPFedAvg",
           "FLHistory", "client_seed",
           "clip_update", "fedavg", "sample_clients", "set_flat_params", "update_to_gradients",
           "dirichlet_partition", "iid_partition", "PRIME", "RING_BITS", "SecureAggregate", "decode_fixed",
           "encode_fixed", "secure_aggregate", "shamir_reconstruct", "shamir_share"]
