//! Asking the apiserver about a caller with the caller's own client: who they are
//! (SelfSubjectReview) and whether they may do something (SelfSubjectAccessReview). Both are
//! open to every authenticated user, so whoever asks on a caller's behalf needs no rights of
//! its own to do so.

use k8s_openapi::api::{
    authentication::v1::{SelfSubjectReview, UserInfo},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
};
use kube::api::PostParams;
use weir_model::Kind;

/// Who `client`'s credentials belong to.
pub async fn user_of(client: kube::Client) -> Result<UserInfo, kube::Error> {
    let reviews: kube::Api<SelfSubjectReview> = kube::Api::all(client);
    let review = reviews.create(&PostParams::default(), &SelfSubjectReview::default()).await?;
    Ok(review.status.and_then(|s| s.user_info).unwrap_or_default())
}

/// Whether `client`'s user may `verb` the Weir resource `name` of `kind` in `namespace`, as
/// the apiserver's authorizers answer.
pub async fn may(
    client: kube::Client,
    verb: &str,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(weir_model::GROUP.to_owned()),
                resource: Some(kind.plural().to_owned()),
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client);
    let answer = reviews.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}
