#!/usr/bin/env python3
"""Classify face images with fer-server: the smallest useful Python client.

Generate the Python stubs once, from the repository root, with grpcio-tools:
    python3 -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen \
        proto/fer/v1/expression.proto
or with Debian's protoc and grpc_python_plugin (package protobuf-compiler-grpc):
    protoc -I proto --python_out=gen --grpc_out=gen \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin proto/fer/v1/expression.proto
then run:
    PYTHONPATH=gen python3 client/examples/classify.py --target=localhost:50051 a.jpg b.png

Prints one line per face: the file, the top label, its probability, and the
seven probabilities in label order; with --attention, also the shape of the
face's attention map and its center share (AttentionMap in the proto).
"""
import argparse
import sys

import grpc

from fer.v1 import expression_pb2, expression_pb2_grpc


def main():
    parser = argparse.ArgumentParser(description="Classify face images with fer-server.")
    parser.add_argument("--target", default="localhost:50051", help="fer-server host:port")
    parser.add_argument("--deadline_s", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--attention", action="store_true",
                        help="ask for each face's attention map and print its shape")
    parser.add_argument("images", nargs="+", help="face crops: JPEG, PNG, WebP or BMP files")
    args = parser.parse_args()

    # One request carries every face; the server answers them in order. Files
    # are sent as they are: the server decodes, resizes and checks them.
    request = expression_pb2.ClassifyRequest()
    for path in args.images:
        try:
            with open(path, "rb") as f:
                request.faces.add(encoded=f.read())
        except OSError as error:
            print(f"classify.py: {path}: {error.strerror}", file=sys.stderr)
            return 1
    # Maps come from the same forward pass; unasked, none is computed or sent.
    request.options.attention = args.attention

    with grpc.insecure_channel(args.target) as channel:
        stub = expression_pb2_grpc.ExpressionClassifierStub(channel)
        try:
            labels = stub.GetModelInfo(expression_pb2.GetModelInfoRequest(),
                                       timeout=args.deadline_s).labels
            response = stub.Classify(request, timeout=args.deadline_s)
        except grpc.RpcError as error:
            # INVALID_ARGUMENT names the bad face's index; RESOURCE_EXHAUSTED
            # asks to retry later; UNAVAILABLE: no server or it is draining.
            print(f"classify.py: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1

    for path, prediction in zip(args.images, response.predictions):
        probabilities = " ".join(f"{label}={p:.4f}"
                                 for label, p in zip(labels, prediction.probabilities))
        line = f"{path}  {prediction.top_label_name} {prediction.confidence:.4f}  {probabilities}"
        if args.attention:
            # values: height x width floats, row-major; cell (r, c) is centred
            # on pixel (16 r, 16 c) of the face resized to ModelInfo.input_size.
            heat = prediction.attention
            line += f"  attention={heat.height}x{heat.width} center_share={heat.center_share:.4f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
