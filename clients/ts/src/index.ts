// ShopMesh from TypeScript and browsers: the generated message types and service
// descriptors (protobuf-es, from protos/) with Connect's clients over gRPC-Web, the
// protocol Envoy's public listener serves beside REST. The helper below only wires a
// transport to the three services; the generated descriptors and Connect clients are the API.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { InventoryService } from "../gen/shopmesh/inventory/v1/inventory_pb.js";
import { NotificationService } from "../gen/shopmesh/notifications/v1/notifications_pb.js";
import { OrderService } from "../gen/shopmesh/orders/v1/orders_pb.js";

export * from "../gen/shopmesh/inventory/v1/inventory_pb.js";
export * from "../gen/shopmesh/notifications/v1/notifications_pb.js";
export * from "../gen/shopmesh/orders/v1/orders_pb.js";
// the details of a refusal (ErrorInfo, BadRequest, ResourceInfo, ...): error.findDetails(ErrorInfoSchema)
export * from "../gen/google/rpc/error_details_pb.js";
export * from "../gen/google/type/money_pb.js";
export { Code, ConnectError, createClient } from "@connectrpc/connect";
export type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
export { createGrpcWebTransport } from "@connectrpc/connect-web";
export { create, fromJson, toJson } from "@bufbuild/protobuf";

/** A bearer token, or a function that returns the current one (e.g. after a refresh). */
export type Token = string | (() => string | undefined | Promise<string | undefined>);

export interface ShopMeshClients {
  orders: Client<typeof OrderService>;
  inventory: Client<typeof InventoryService>;
  notifications: Client<typeof NotificationService>;
  transport: Transport;
}

/** Sends `authorization: Bearer <token>` on every call that has a token. */
export function bearer(token: Token): Interceptor {
  return (next) => async (request) => {
    const value = typeof token === "function" ? await token() : token;
    if (value) request.header.set("authorization", `Bearer ${value}`);
    return next(request);
  };
}

/**
 * Clients of the public services through Envoy's public listener, e.g.
 * `createClients("https://shop.example.com", token)`; without a token, only what
 * anonymous callers may use (ListProducts, GetProduct, CheckStock).
 */
export function createClients(baseUrl: string, token?: Token): ShopMeshClients {
  const transport = createGrpcWebTransport({
    baseUrl,
    interceptors: token === undefined ? [] : [bearer(token)],
  });
  return {
    orders: createClient(OrderService, transport),
    inventory: createClient(InventoryService, transport),
    notifications: createClient(NotificationService, transport),
    transport,
  };
}
