// Shared helper for the bridged providers rebuilt in engine/pulumi-resource-*.
module citadel.local/engine/bridged

go 1.25.8
