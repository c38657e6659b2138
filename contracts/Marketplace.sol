// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ImageRegistry} from "./ImageRegistry.sol";

/// Minimal ERC-20 + EIP-2612 surface the Marketplace uses.
interface IERC20Permit {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;
}

/// @title Marketplace: matches tasks with compute offers, escrows the price, settles on proof.
/// @notice Every call is O(1). A task is one storage word: a 192-bit commitment to its
///         spec, the image's enclave signer, the requester, the escrow (the requester's
///         maxPrice, held whole until the task ends) and the price of the offer holding it,
///         plus that offer. Callers pass spec, requester, maxPrice and price back (as emitted
///         in TaskSubmitted and TaskClaimed). CIDs live in calldata and events; the spec
///         commits to the input CID's hash. Settlement follows the status code signed by the
///         image's enclave over the whole spec and the result's CID: < 16 pays the node its
///         price and returns the rest of the escrow, >= 16 refunds the requester in full.
///         Fee-on-transfer and rebasing tokens are not supported.
contract Marketplace {
    // ---------------------------------------------------------------- types

    /// The immutable fields of a task, passed back by callers and checked against the
    /// stored commitment.
    struct TaskSpec {
        /// Image to run (ImageRegistry id).
        bytes32 imageId;
        /// keccak256 of the input ciphertext as stored.
        bytes32 inputHash;
        /// keccak256 of the input's CID as text (the `inputCid` of submitTask).
        bytes32 inputCidHash;
        /// Memory the task needs, MB: the enclave's memory limit.
        uint32 memoryMb;
        /// Run time the task may use, seconds: the enclave's fuel budget is
        /// maxRuntimeS * FUEL_PER_SECOND, and its wall-clock allowance derives from it.
        uint32 maxRuntimeS;
        /// Unix time after which the task can no longer be claimed or proven, and the
        /// requester may reclaim the escrow.
        uint64 deadline;
    }

    /// An offer of resources by a node. Two words for the fit check, one for the image.
    struct Offer {
        address node;
        uint16 slots;
        uint16 usedSlots;
        uint32 memoryMb;
        uint32 maxRuntimeS;
        uint96 price;
        uint8 platform;
        bool withdrawn;
        /// bytes32(0): any image whose platforms include `platform`.
        bytes32 imageId;
    }

    /// A live task: one word. Deleted at settlement.
    struct Task {
        /// Leading 192 bits of keccak256(abi.encode(spec, enclaveSigner, requester, maxPrice,
        /// price)): maxPrice is the escrow, price the holding offer's price (0 while open).
        bytes24 commitment;
        /// 0 while open.
        uint64 offerId;
    }

    /// One proof for submitResults: submitResult's arguments.
    struct Proof {
        uint256 taskId;
        TaskSpec spec;
        address requester;
        uint96 maxPrice;
        uint96 price;
        string resultCid;
        bytes32 resultHash;
        bytes32 codeHash;
        uint16 status;
        uint64 runtimeMs;
        bytes signature;
    }

    /// Token totals, for conservation checks: escrowed == paid + refunded + held.
    struct Totals {
        uint256 escrowed;
        uint256 paid;
        uint256 refunded;
        uint256 held;
    }

    // ---------------------------------------------------------------- constants

    bytes32 public constant TASK_SPEC_TYPEHASH = keccak256(
        "TaskSpec(bytes32 imageId,bytes32 inputHash,bytes32 inputCidHash,uint32 memoryMb,uint32 maxRuntimeS,uint64 deadline)"
    );
    bytes32 public constant RESULT_TYPEHASH = keccak256(
        "Result(uint256 taskId,TaskSpec spec,bytes32 codeHash,bytes32 resultHash,bytes32 resultCidHash,uint16 status,uint64 runtimeMs)TaskSpec(bytes32 imageId,bytes32 inputHash,bytes32 inputCidHash,uint32 memoryMb,uint32 maxRuntimeS,uint64 deadline)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// First status code that refunds the requester.
    uint16 public constant FIRST_SYSTEM_STATUS = 16;
    /// Highest status codes of each class (0-6 pay the node, 16-19 refund).
    uint16 private constant LAST_PAID_STATUS = 6;
    uint16 private constant LAST_SYSTEM_STATUS = 19;
    /// secp256k1n / 2: signatures with a higher s are refused (EIP-2).
    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    IERC20Permit public immutable token;
    ImageRegistry public immutable registry;
    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    // ---------------------------------------------------------------- storage

    /// Number of tasks submitted (the last task id) and total escrowed, in one word.
    uint64 public taskCount;
    uint192 private totalEscrowed;
    /// Totals paid out to nodes and refunded to requesters, in one word.
    uint128 private totalPaid;
    uint128 private totalRefunded;
    uint64 public offerCount;

    mapping(uint256 => Task) private tasks;
    mapping(uint64 => Offer) private offers;
    /// Tokens deposited by each account and not yet drawn for a task or withdrawn. A task
    /// submitted by an account draws its escrow from here first (no token transfer, no
    /// permit); the rest is pulled from the account's wallet.
    mapping(address => uint256) public balanceOf;

    // ---------------------------------------------------------------- events

    event OfferRegistered(
        uint64 indexed offerId,
        address indexed node,
        bytes32 indexed imageId,
        uint8 platform,
        uint16 slots,
        uint32 memoryMb,
        uint32 maxRuntimeS,
        uint96 price
    );
    event OfferUpdated(
        uint64 indexed offerId,
        address indexed node,
        bytes32 indexed imageId,
        uint8 platform,
        uint16 slots,
        uint32 memoryMb,
        uint32 maxRuntimeS,
        uint96 price
    );
    event OfferWithdrawn(uint64 indexed offerId, address indexed node);
    /// Everything a node needs to take and run the task. `maxPrice` is the escrow; `price` is
    /// the offer's price when matched at submission (offerId != 0), else 0.
    event TaskSubmitted(
        uint256 indexed taskId,
        address indexed requester,
        bytes32 indexed imageId,
        bytes32 inputHash,
        uint32 memoryMb,
        uint32 maxRuntimeS,
        uint64 deadline,
        uint96 maxPrice,
        uint96 price,
        uint64 offerId,
        string inputCid
    );
    /// An open task was claimed at the offer's `price`; the whole escrow stays held until the
    /// task ends.
    event TaskClaimed(uint256 indexed taskId, uint64 indexed offerId, address indexed node, uint96 price);
    /// The node gave the task back; it is open again, on its original terms.
    event TaskReleased(uint256 indexed taskId, uint64 indexed offerId, address indexed node);
    /// A proof of execution was accepted and the task settled: when status < 16 the node got
    /// `paid` (its price) and the requester `refunded` (the rest of the escrow); else the
    /// requester got the whole escrow back. `signer` is the recovered enclave signer.
    event ResultSubmitted(
        uint256 indexed taskId,
        uint64 indexed offerId,
        address indexed node,
        address signer,
        bytes32 resultHash,
        bytes32 codeHash,
        uint16 status,
        uint64 runtimeMs,
        uint96 paid,
        uint96 refunded,
        string resultCid,
        bytes signature
    );
    /// The requester took the escrow back: after the deadline, before any node claimed the
    /// task (a cancel), or once the image was revoked.
    event TaskReclaimed(uint256 indexed taskId, address indexed requester, uint64 indexed offerId, uint96 amount);

    /// `account`'s deposit grew by `amount` tokens (see balanceOf): it deposited them, or a
    /// refund its wallet refused was credited there instead.
    event Deposited(address indexed account, uint256 amount);
    /// `account` took `amount` tokens of its deposit back to its wallet.
    event Withdrawn(address indexed account, uint256 amount);

    // ---------------------------------------------------------------- errors

    error UnknownImage(bytes32 imageId);
    error ImageDeprecated(bytes32 imageId);
    /// The image was revoked by its publisher: no claim or proof is accepted for it.
    error ImageRevoked(bytes32 imageId);
    /// submitTask: spec.inputCidHash is not keccak256 of the inputCid passed.
    error InputCidMismatch(bytes32 expected, bytes32 actual);
    /// The offer's platform is not among the image's allowed platforms.
    error PlatformNotAllowed(bytes32 imageId, uint8 platform, uint8 allowed);
    /// Offer terms invalid: platform must be one of 1, 2, 4 and slots at least 1.
    error InvalidOffer(string reason);
    error UnknownOffer(uint64 offerId);
    error NotOfferNode(uint64 offerId, address caller, address node);
    error OfferIsWithdrawn(uint64 offerId);
    /// All of the offer's slots are in use.
    error OfferFull(uint64 offerId, uint16 slots);
    /// The offer serves another image.
    error ImageMismatch(uint64 offerId, bytes32 offerImage, bytes32 taskImage);
    error MemoryTooSmall(uint64 offerId, uint32 offered, uint32 needed);
    error RuntimeTooShort(uint64 offerId, uint32 offered, uint32 needed);
    error PriceTooHigh(uint64 offerId, uint96 price, uint96 maxPrice);
    /// The deadline is in the past (at submission, claim, or proof).
    error DeadlinePassed(uint256 taskId, uint64 deadline);
    /// Reclaim of a task a node holds, before the deadline, for an image that is not revoked.
    error DeadlineNotReached(uint256 taskId, uint64 deadline);
    /// No live task with this id: never submitted, or already settled or reclaimed.
    error TaskNotActive(uint256 taskId);
    /// The passed TaskSpec is not the one the task was submitted with.
    error SpecMismatch(uint256 taskId);
    error TaskAlreadyClaimed(uint256 taskId, uint64 offerId);
    /// The task is open: nobody holds it.
    error TaskNotClaimed(uint256 taskId);
    /// Only the node holding the task (through its offer) may do this.
    error NotTaskHolder(uint256 taskId, address caller, address holder);
    /// reclaim: the caller is not the requester, or the spec or prices passed are not the
    /// task's.
    error SpecMismatchOrNotRequester(uint256 taskId, address caller);
    /// The proof was not signed by the image's enclave signer (wrong key, task, chain id,
    /// contract, or fields).
    error WrongSigner(uint256 taskId, address recovered, address expected);
    /// The signature is not 65 bytes r‖s‖v with low s and v in {27, 28}.
    error MalformedSignature();
    /// Not a status code of the protocol (0-6, 16-19).
    error UnknownStatus(uint16 status);
    /// The token refused a transfer.
    error TokenTransferFailed();
    /// withdraw: more than the account's deposit.
    error InsufficientDeposit(uint256 balance, uint256 amount);
    /// submitResults or submitTasks with nothing in it.
    error EmptyBatch();
    /// submitTasks: the arrays are not all the same length.
    error BatchLengthMismatch();

    constructor(IERC20Permit token_, ImageRegistry registry_) {
        token = token_;
        registry = registry_;
        cachedChainId = block.chainid;
        cachedDomainSeparator = _domainSeparator();
    }

    // ---------------------------------------------------------------- offers

    function registerOffer(
        bytes32 imageId,
        uint8 platform,
        uint16 slots,
        uint32 memoryMb,
        uint32 maxRuntimeS,
        uint96 price
    ) external returns (uint64 offerId) {
        _checkOfferTerms(imageId, platform, slots);
        unchecked {
            offerId = ++offerCount;
        }
        offers[offerId] = Offer({
            node: msg.sender,
            slots: slots,
            usedSlots: 0,
            memoryMb: memoryMb,
            maxRuntimeS: maxRuntimeS,
            price: price,
            platform: platform,
            withdrawn: false,
            imageId: imageId
        });
        emit OfferRegistered(offerId, msg.sender, imageId, platform, slots, memoryMb, maxRuntimeS, price);
    }

    /// @notice Changes an offer's terms. Tasks already held keep their price; if `slots` drops
    ///         below the slots in use, no new task is taken until enough finish.
    function updateOffer(
        uint64 offerId,
        bytes32 imageId,
        uint8 platform,
        uint16 slots,
        uint32 memoryMb,
        uint32 maxRuntimeS,
        uint96 price
    ) external {
        Offer storage o = _ownOffer(offerId);
        if (o.withdrawn) revert OfferIsWithdrawn(offerId);
        _checkOfferTerms(imageId, platform, slots);
        o.slots = slots;
        o.memoryMb = memoryMb;
        o.maxRuntimeS = maxRuntimeS;
        o.price = price;
        o.platform = platform;
        o.imageId = imageId;
        emit OfferUpdated(offerId, msg.sender, imageId, platform, slots, memoryMb, maxRuntimeS, price);
    }

    /// @notice Stops new matches. Tasks the offer holds still settle (or are released).
    function withdrawOffer(uint64 offerId) external {
        Offer storage o = _ownOffer(offerId);
        if (o.withdrawn) revert OfferIsWithdrawn(offerId);
        o.withdrawn = true;
        emit OfferWithdrawn(offerId, msg.sender);
    }

    // ---------------------------------------------------------------- deposits

    /// @notice Moves `amount` tokens from the caller's wallet into its deposit (needs an
    ///         allowance; see depositWithPermit). Tasks the caller submits draw on it.
    function deposit(uint256 amount) external {
        _deposit(amount);
    }

    /// @notice deposit in one transaction: first applies the caller's EIP-2612 permit for
    ///         `amount` to this contract. A permit already used is ignored; the deposit then
    ///         needs the allowance to exist.
    function depositWithPermit(uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s) external {
        try token.permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        _deposit(amount);
    }

    /// Pulls `amount` from the caller's wallet, then credits its deposit.
    function _deposit(uint256 amount) private {
        _receive(msg.sender, amount);
        balanceOf[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
    }

    /// @notice Sends `amount` of the caller's deposit back to its wallet.
    function withdraw(uint256 amount) external {
        uint256 balance = balanceOf[msg.sender];
        if (amount > balance) revert InsufficientDeposit(balance, amount);
        unchecked {
            balanceOf[msg.sender] = balance - amount;
        }
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- tasks

    /// @notice Submits a task, escrowing `maxPrice` until it ends. With offerId 0 the task is
    ///         open for any fitting offer to claim; else it is matched now, at the named
    ///         offer's price. The escrow is drawn from the caller's deposit first; the rest
    ///         needs an allowance (see submitTaskWithPermit).
    function submitTask(TaskSpec calldata spec, string calldata inputCid, uint96 maxPrice, uint64 offerId)
        external
        returns (uint256 taskId)
    {
        return _submit(spec, inputCid, maxPrice, offerId);
    }

    /// @notice submitTask in one transaction: first applies the requester's EIP-2612 permit
    ///         for `maxPrice` to this contract. A permit already used (for example by a
    ///         front-runner) is ignored; the escrow then needs the allowance to exist.
    function submitTaskWithPermit(
        TaskSpec calldata spec,
        string calldata inputCid,
        uint96 maxPrice,
        uint64 offerId,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 taskId) {
        try token.permit(msg.sender, address(this), maxPrice, permitDeadline, v, r, s) {} catch {}
        return _submit(spec, inputCid, maxPrice, offerId);
    }

    /// @notice submitTask for many tasks in one transaction, in order (task ids consecutive):
    ///         the transaction's base cost is paid once, and the registry read of an image and
    ///         the deposit's storage cost in full only for the first task (warm after it). The
    ///         arrays are index-aligned. Any task refused reverts
    ///         them all.
    function submitTasks(
        TaskSpec[] calldata specs,
        string[] calldata inputCids,
        uint96[] calldata maxPrices,
        uint64[] calldata offerIds
    ) external returns (uint256 firstTaskId) {
        uint256 n = specs.length;
        if (n == 0) revert EmptyBatch();
        if (inputCids.length != n || maxPrices.length != n || offerIds.length != n) revert BatchLengthMismatch();
        firstTaskId = _submit(specs[0], inputCids[0], maxPrices[0], offerIds[0]);
        for (uint256 i = 1; i < n;) {
            _submit(specs[i], inputCids[i], maxPrices[i], offerIds[i]);
            unchecked {
                ++i;
            }
        }
    }

    /// @notice Takes an open task for one of the caller's offers, at the offer's price. The
    ///         whole escrow stays held: the rest goes back to the requester when the task
    ///         settles, and a released task returns to the market on its original terms.
    /// @param requester As in TaskSubmitted.
    /// @param maxPrice TaskSubmitted's maxPrice (the escrow).
    function claimTask(uint256 taskId, uint64 offerId, TaskSpec calldata spec, address requester, uint96 maxPrice)
        external
    {
        Task storage t = tasks[taskId];
        bytes24 commitment = t.commitment;
        if (commitment == bytes24(0)) revert TaskNotActive(taskId);
        if (t.offerId != 0) revert TaskAlreadyClaimed(taskId, t.offerId);
        if (block.timestamp > spec.deadline) revert DeadlinePassed(taskId, spec.deadline);
        // A deprecated image takes no new tasks, but tasks already submitted may still run;
        // a revoked one runs nothing more.
        (address signer, uint8 platforms,, bool revoked) = registry.imageStatus(spec.imageId);
        if (commitment != _commit(spec, signer, requester, maxPrice, 0)) revert SpecMismatch(taskId);
        if (revoked) revert ImageRevoked(spec.imageId);
        Offer storage o = offers[offerId];
        if (o.node != msg.sender) {
            if (o.node == address(0)) revert UnknownOffer(offerId);
            revert NotOfferNode(offerId, msg.sender, o.node);
        }
        uint96 price = _take(o, offerId, spec, platforms, maxPrice);
        t.commitment = _commit(spec, signer, requester, maxPrice, price);
        t.offerId = offerId;
        emit TaskClaimed(taskId, offerId, msg.sender, price);
    }

    /// @notice The holding node gives the task back: it is open again, with its whole escrow
    ///         and original terms, and the slot is free.
    /// @param price TaskClaimed's price (or TaskSubmitted's, when matched at submission).
    function releaseTask(uint256 taskId, TaskSpec calldata spec, address requester, uint96 maxPrice, uint96 price)
        external
    {
        Task storage t = tasks[taskId];
        bytes24 commitment = t.commitment;
        if (commitment == bytes24(0)) revert TaskNotActive(taskId);
        uint64 offerId = t.offerId;
        if (offerId == 0) revert TaskNotClaimed(taskId);
        Offer storage o = offers[offerId];
        if (o.node != msg.sender) revert NotTaskHolder(taskId, msg.sender, o.node);
        (address signer,,,) = registry.imageStatus(spec.imageId);
        if (commitment != _commit(spec, signer, requester, maxPrice, price)) revert SpecMismatch(taskId);
        t.commitment = _commit(spec, signer, requester, maxPrice, 0);
        t.offerId = 0;
        unchecked {
            o.usedSlots -= 1;
        }
        emit TaskReleased(taskId, offerId, msg.sender);
    }

    /// @notice The holding node relays the enclave's proof; the task settles at once. The
    ///         enclave signs the whole spec (so the limits it enforced are the requester's)
    ///         and the hash of the result's CID (so the result is where the proof says).
    /// @param requester As in TaskSubmitted.
    /// @param maxPrice TaskSubmitted's maxPrice (the escrow).
    /// @param price TaskClaimed's price (or TaskSubmitted's, when matched at submission).
    /// @param signature 65 bytes r‖s‖v over the EIP-712 Result message.
    function submitResult(
        uint256 taskId,
        TaskSpec calldata spec,
        address requester,
        uint96 maxPrice,
        uint96 price,
        string calldata resultCid,
        bytes32 resultHash,
        bytes32 codeHash,
        uint16 status,
        uint64 runtimeMs,
        bytes calldata signature
    ) external {
        uint96 paid = _settle(
            taskId, spec, requester, maxPrice, price, resultCid, resultHash, codeHash, status, runtimeMs, signature
        );
        _send(msg.sender, paid);
    }

    /// @notice submitResult for many tasks in one transaction: each proof is checked and its
    ///         task settled as by submitResult, refunds go out per task, and the caller (the
    ///         node holding every one of the tasks) is paid the sum once. One bad proof
    ///         reverts the whole batch; submit the others again without it.
    function submitResults(Proof[] calldata proofs) external {
        uint256 n = proofs.length;
        if (n == 0) revert EmptyBatch();
        uint256 paid;
        for (uint256 i; i < n;) {
            Proof calldata p = proofs[i];
            paid += _settle(
                p.taskId,
                p.spec,
                p.requester,
                p.maxPrice,
                p.price,
                p.resultCid,
                p.resultHash,
                p.codeHash,
                p.status,
                p.runtimeMs,
                p.signature
            );
            unchecked {
                ++i;
            }
        }
        _send(msg.sender, paid);
    }

    /// @notice The requester takes back the whole escrow of a task that has no result: any
    ///         time while no node holds it (a cancel), at once if its image was revoked, else
    ///         after the deadline. A holding node's slot is freed.
    /// @param price 0 for an open task, else the holding offer's price (TaskClaimed's).
    function reclaim(uint256 taskId, TaskSpec calldata spec, uint96 maxPrice, uint96 price) external {
        Task memory t = tasks[taskId];
        if (t.commitment == bytes24(0)) revert TaskNotActive(taskId);
        (address signer,,, bool revoked) = registry.imageStatus(spec.imageId);
        if (t.commitment != _commit(spec, signer, msg.sender, maxPrice, price)) {
            // Only the commitment is stored, so a stranger and a wrong spec or price look alike.
            revert SpecMismatchOrNotRequester(taskId, msg.sender);
        }
        if (t.offerId != 0 && !revoked && block.timestamp <= spec.deadline) {
            revert DeadlineNotReached(taskId, spec.deadline);
        }
        delete tasks[taskId];
        if (t.offerId != 0) {
            unchecked {
                offers[t.offerId].usedSlots -= 1;
            }
        }
        unchecked {
            totalRefunded += maxPrice;
        }
        emit TaskReclaimed(taskId, msg.sender, t.offerId, maxPrice);
        _send(msg.sender, maxPrice);
    }

    // ---------------------------------------------------------------- views

    function getOffer(uint64 offerId) external view returns (Offer memory) {
        return offers[offerId];
    }

    /// @notice A live task's stored word; all zero once settled or reclaimed.
    function getTask(uint256 taskId) external view returns (Task memory) {
        return tasks[taskId];
    }

    /// @notice Token totals of the escrows: escrowed == paid + refunded + held. This
    ///         contract's token balance is held plus the deposits (balanceOf of every account
    ///         in Deposited), unless someone sent tokens here directly.
    function totals() external view returns (Totals memory) {
        uint256 escrowed = totalEscrowed;
        uint256 paid = totalPaid;
        uint256 refunded = totalRefunded;
        return Totals({escrowed: escrowed, paid: paid, refunded: refunded, held: escrowed - paid - refunded});
    }

    /// @notice The commitment a task with these fields has, for clients checking them.
    function commitmentOf(TaskSpec calldata spec, address requester, uint96 maxPrice, uint96 price)
        external
        view
        returns (bytes24)
    {
        (address signer,,,) = registry.imageStatus(spec.imageId);
        return _commit(spec, signer, requester, maxPrice, price);
    }

    /// @notice The EIP-712 hashStruct of a spec, as nested in Result proofs.
    function hashSpec(TaskSpec calldata spec) external pure returns (bytes32) {
        return _hashSpec(spec);
    }

    /// @notice The EIP-712 domain separator of Result proofs.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _domainSeparator();
    }

    // ---------------------------------------------------------------- internals

    function _submit(TaskSpec calldata spec, string calldata inputCid, uint96 maxPrice, uint64 offerId)
        private
        returns (uint256 taskId)
    {
        (address signer, uint8 platforms, bool deprecated,) = registry.imageStatus(spec.imageId);
        if (signer == address(0)) revert UnknownImage(spec.imageId);
        // Revoking also deprecates.
        if (deprecated) revert ImageDeprecated(spec.imageId);
        bytes32 cidHash = keccak256(bytes(inputCid));
        if (cidHash != spec.inputCidHash) revert InputCidMismatch(spec.inputCidHash, cidHash);
        uint64 count = taskCount;
        unchecked {
            taskId = count + 1;
        }
        if (block.timestamp > spec.deadline) revert DeadlinePassed(taskId, spec.deadline);
        uint96 price;
        if (offerId != 0) {
            Offer storage o = offers[offerId];
            if (o.node == address(0)) revert UnknownOffer(offerId);
            price = _take(o, offerId, spec, platforms, maxPrice);
        }
        taskCount = uint64(taskId);
        totalEscrowed += maxPrice;
        tasks[taskId] = Task({commitment: _commit(spec, signer, msg.sender, maxPrice, price), offerId: offerId});
        emit TaskSubmitted(
            taskId,
            msg.sender,
            spec.imageId,
            spec.inputHash,
            spec.memoryMb,
            spec.maxRuntimeS,
            spec.deadline,
            maxPrice,
            price,
            offerId,
            inputCid
        );
        uint256 deposit_ = balanceOf[msg.sender];
        if (deposit_ >= maxPrice) {
            unchecked {
                balanceOf[msg.sender] = deposit_ - maxPrice;
            }
        } else {
            if (deposit_ != 0) balanceOf[msg.sender] = 0;
            unchecked {
                _receive(msg.sender, maxPrice - uint96(deposit_));
            }
        }
    }

    /// Checks one proof and settles its task: refunds the requester at once, returns what the
    /// caller (the holding node, checked) is owed.
    function _settle(
        uint256 taskId,
        TaskSpec calldata spec,
        address requester,
        uint96 maxPrice,
        uint96 price,
        string calldata resultCid,
        bytes32 resultHash,
        bytes32 codeHash,
        uint16 status,
        uint64 runtimeMs,
        bytes calldata signature
    ) private returns (uint96 paid) {
        if (status > LAST_SYSTEM_STATUS || (status > LAST_PAID_STATUS && status < FIRST_SYSTEM_STATUS)) {
            revert UnknownStatus(status);
        }
        Task memory t = tasks[taskId];
        if (t.commitment == bytes24(0)) revert TaskNotActive(taskId);
        if (t.offerId == 0) revert TaskNotClaimed(taskId);
        Offer storage o = offers[t.offerId];
        address node = o.node;
        if (node != msg.sender) revert NotTaskHolder(taskId, msg.sender, node);
        if (block.timestamp > spec.deadline) revert DeadlinePassed(taskId, spec.deadline);

        address signer = _recover(
            keccak256(
                abi.encode(
                    RESULT_TYPEHASH,
                    taskId,
                    _hashSpec(spec),
                    codeHash,
                    resultHash,
                    keccak256(bytes(resultCid)),
                    status,
                    runtimeMs
                )
            ),
            signature
        );
        // The commitment binds the spec, the image's signer, the requester and both prices:
        // one hash checks them all. On mismatch, find out which for the error.
        if (t.commitment != _commit(spec, signer, requester, maxPrice, price)) _explainMismatch(taskId, spec, signer);
        (,,, bool revoked) = registry.imageStatus(spec.imageId);
        if (revoked) revert ImageRevoked(spec.imageId);

        delete tasks[taskId];
        unchecked {
            o.usedSlots -= 1;
        }
        uint96 refunded = maxPrice;
        if (status < FIRST_SYSTEM_STATUS) {
            paid = price;
            unchecked {
                // _take guaranteed price <= maxPrice.
                refunded = maxPrice - price;
                totalPaid += paid;
            }
        }
        unchecked {
            totalRefunded += refunded;
        }
        emit ResultSubmitted(
            taskId, t.offerId, node, signer, resultHash, codeHash, status, runtimeMs, paid, refunded, resultCid, signature
        );
        _refund(requester, refunded);
    }

    /// Sends a refund to the requester's wallet; if the token refuses (a blocklisted account,
    /// a recipient hook that reverts), credits it to the requester's deposit instead, so that
    /// a requester can never stop a proof from settling (and the node from being paid) by
    /// refusing its own refund.
    function _refund(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok, bytes memory ret) = address(token).call(abi.encodeCall(IERC20Permit.transfer, (to, amount)));
        if (_accepted(ok, ret)) return;
        balanceOf[to] += amount;
        emit Deposited(to, amount);
    }

    /// Checks the offer fits the task and takes a slot; returns the price to escrow.
    function _take(Offer storage o, uint64 offerId, TaskSpec calldata spec, uint8 platforms, uint96 maxPrice)
        private
        returns (uint96)
    {
        if (o.withdrawn) revert OfferIsWithdrawn(offerId);
        uint16 used = o.usedSlots;
        if (used >= o.slots) revert OfferFull(offerId, o.slots);
        if (o.memoryMb < spec.memoryMb) revert MemoryTooSmall(offerId, o.memoryMb, spec.memoryMb);
        if (o.maxRuntimeS < spec.maxRuntimeS) revert RuntimeTooShort(offerId, o.maxRuntimeS, spec.maxRuntimeS);
        uint96 price = o.price;
        if (price > maxPrice) revert PriceTooHigh(offerId, price, maxPrice);
        if (platforms & o.platform == 0) revert PlatformNotAllowed(spec.imageId, o.platform, platforms);
        bytes32 offerImage = o.imageId;
        if (offerImage != bytes32(0) && offerImage != spec.imageId) {
            revert ImageMismatch(offerId, offerImage, spec.imageId);
        }
        unchecked {
            o.usedSlots = used + 1;
        }
        return price;
    }

    function _ownOffer(uint64 offerId) private view returns (Offer storage o) {
        o = offers[offerId];
        if (o.node != msg.sender) {
            if (o.node == address(0)) revert UnknownOffer(offerId);
            revert NotOfferNode(offerId, msg.sender, o.node);
        }
    }

    function _checkOfferTerms(bytes32 imageId, uint8 platform, uint16 slots) private view {
        if (platform != 1 && platform != 2 && platform != 4) revert InvalidOffer("platform must be 1, 2 or 4");
        if (slots == 0) revert InvalidOffer("slots must be at least 1");
        if (imageId != bytes32(0)) {
            (address signer, uint8 platforms, bool deprecated,) = registry.imageStatus(imageId);
            if (signer == address(0)) revert UnknownImage(imageId);
            if (deprecated) revert ImageDeprecated(imageId);
            if (platforms & platform == 0) revert PlatformNotAllowed(imageId, platform, platforms);
        }
    }

    function _commit(TaskSpec calldata spec, address signer, address requester, uint96 maxPrice, uint96 price)
        private
        pure
        returns (bytes24)
    {
        return bytes24(keccak256(abi.encode(spec, signer, requester, maxPrice, price)));
    }

    function _hashSpec(TaskSpec calldata spec) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                TASK_SPEC_TYPEHASH,
                spec.imageId,
                spec.inputHash,
                spec.inputCidHash,
                spec.memoryMb,
                spec.maxRuntimeS,
                spec.deadline
            )
        );
    }

    /// Reverts with the precise reason a proof did not match: wrong signer, or wrong spec.
    function _explainMismatch(uint256 taskId, TaskSpec calldata spec, address recovered) private view {
        (address expected,,,) = registry.imageStatus(spec.imageId);
        if (expected != address(0) && recovered != expected) revert WrongSigner(taskId, recovered, expected);
        revert SpecMismatch(taskId);
    }

    function _recover(bytes32 structHash, bytes calldata signature) private view returns (address signer) {
        if (signature.length != 65) revert MalformedSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert MalformedSignature();
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert MalformedSignature();
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("ecld"), keccak256("1"), block.chainid, address(this)));
    }

    function _receive(address from, uint256 amount) private {
        if (amount == 0) return;
        _call(abi.encodeCall(IERC20Permit.transferFrom, (from, address(this), amount)));
    }

    function _send(address to, uint256 amount) private {
        if (amount == 0) return;
        _call(abi.encodeCall(IERC20Permit.transfer, (to, amount)));
    }

    /// Calls the token and requires it to accept (see _accepted); bubbles the token's own
    /// revert reason.
    function _call(bytes memory data) private {
        (bool ok, bytes memory ret) = address(token).call(data);
        if (!ok && ret.length != 0) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (!_accepted(ok, ret)) revert TokenTransferFailed();
    }

    /// Whether a token call succeeded: it did not revert and returned `true`, or returned
    /// nothing from a contract (tokens that predate ERC-20's return value).
    function _accepted(bool ok, bytes memory ret) private view returns (bool) {
        if (!ok) return false;
        if (ret.length == 0) return address(token).code.length != 0;
        return ret.length == 32 && abi.decode(ret, (uint256)) == 1;
    }
}
