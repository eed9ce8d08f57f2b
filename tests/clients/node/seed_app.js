// A stock SageMaker Edge Agent client in Node.js, as a migrating application would have written it:
// the agent's own .proto loaded with @grpc/proto-loader, @grpc/grpc-js over the unix socket, and
// nothing of edgeinspect's. It runs the seed application's sequence (load, list, predict both
// models, capture, unload), copying each request's metadata from ListModels and sending float32
// NCHW raw 0-255 pixels, and prints one JSON object of what it saw for the Python test to check.
//
// Environment: AGENT_ADDR (unix:///...sock), PROTO (path to sagemaker_edge_agent.proto), CLS_DIR and
// SEG_DIR (package folders), CAPTURE_ID, and SYSV_ID (optional: a System V segment id holding one
// float32 bright image of the classifier's shape, written by the test with shmget).
"use strict";

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const env = process.env;
const definition = protoLoader.loadSync(env.PROTO, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const Agent = grpc.loadPackageDefinition(definition).AWS.SageMaker.Edge.Agent;
const agent = new Agent(env.AGENT_ADDR, grpc.credentials.createInsecure());

function call(method, request) {
  return new Promise((resolve, reject) => {
    agent[method](request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function pixels(shape, level) {
  // What the seed app did: x.astype(np.float32).tobytes() of a raw-pixel NCHW image.
  const count = shape.reduce((a, b) => a * Number(b), 1);
  return Buffer.from(new Float32Array(count).fill(level).buffer);
}

function floats(tensor) {
  const data = tensor.byte_data;
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

async function predict(model, level) {
  const metadata = model.input_tensor_metadatas[0]; // copied as is: name, data_type, shape
  const response = await call("Predict", {
    name: model.name,
    tensors: [{ tensor_metadata: metadata, byte_data: pixels(metadata.shape, level) }],
  });
  return response.tensors[0];
}

async function main() {
  const out = { listed: [], scores: {}, shm: null, capture: null, errors: {} };
  await call("LoadModel", { url: env.CLS_DIR, name: "defect-cls" });
  await call("LoadModel", { url: env.SEG_DIR, name: "defect-seg" });
  const listed = (await call("ListModels", {})).models;
  out.listed = listed.map((m) => ({
    name: m.name,
    data_type: m.input_tensor_metadatas[0].data_type,
    shape: m.input_tensor_metadatas[0].shape.map(Number),
  }));
  let brightCls = null;
  for (const model of listed) {
    const dark = await predict(model, 20);
    const bright = await predict(model, 235);
    out.scores[model.name] = { dark: mean(floats(dark)), bright: mean(floats(bright)) };
    if (model.name === "defect-cls") brightCls = { model, bright };
  }
  if (env.SYSV_ID) {
    const metadata = brightCls.model.input_tensor_metadatas[0];
    const size = metadata.shape.reduce((a, b) => a * Number(b), 4);
    const response = await call("Predict", {
      name: "defect-cls",
      tensors: [
        {
          tensor_metadata: metadata,
          shared_memory_handle: { size: String(size), offset: "0", segment_id: env.SYSV_ID },
        },
      ],
    });
    out.shm = mean(floats(response.tensors[0]));
  }
  const input = brightCls.model.input_tensor_metadatas[0];
  const output = brightCls.bright.tensor_metadata;
  await call("CaptureData", {
    model_name: "defect-cls",
    capture_id: env.CAPTURE_ID,
    inference_timestamp: { seconds: "1700000000", nanos: 7 },
    input_tensors: [
      {
        tensor_metadata: { name: Buffer.from("input"), data_type: "FLOAT32", shape: input.shape },
        byte_data: pixels(input.shape, 235),
      },
    ],
    output_tensors: [
      {
        tensor_metadata: { name: Buffer.from("output"), data_type: "FLOAT32", shape: output.shape },
        byte_data: brightCls.bright.byte_data,
      },
    ],
    inputs: [{ name: "station", encoding: "JSON", byte_data: Buffer.from('{"cell": 3}') }],
  });
  let status = "IN_PROGRESS";
  for (let i = 0; i < 400 && status === "IN_PROGRESS"; i++) {
    status = (await call("GetCaptureDataStatus", { capture_id: env.CAPTURE_ID })).status;
    if (status === "IN_PROGRESS") await new Promise((r) => setTimeout(r, 50));
  }
  out.capture = status;
  try {
    await call("Predict", { name: "no-such-model", tensors: [] });
  } catch (error) {
    out.errors.unknown_model = grpc.status[error.code];
  }
  await call("UnLoadModel", { name: "defect-cls" });
  await call("UnLoadModel", { name: "defect-seg" });
  out.after_unload = (await call("ListModels", {})).models.length;
  process.stdout.write(JSON.stringify(out) + "\n");
}

main()
  .then(() => agent.close())
  .catch((error) => {
    process.stderr.write(`seed_app failed: ${error.code ?? ""} ${error.details ?? error.message}\n`);
    agent.close();
    process.exit(1);
  });
