// The gRPC echo client/server of the conformance scenarios (conformance/grpc-echo.ts).
export * from '../../conformance/grpc-echo.js';
